"""Traced tiny pipelines for the figure and dashboard tests (random weights: no concepts)."""

import pytest
import torch

from workbench.capture import trace

from ..shapes_fixtures import tiny_shapes_pipeline

PROMPT = "a large red circle on a gray background"


def traced_image_and_maps(pipe, steps: int, per_step: bool):
    torch.manual_seed(0)  # session fixtures are built after whichever test ran last: start from a known state
    with trace(pipe, per_step=per_step) as tr:
        images = pipe([PROMPT], num_inference_steps=steps, output_type="np", generator=torch.Generator().manual_seed(0)).images
    return images[0], tr.attention_maps()


# A pipeline of their own: the shared session pipeline may have been changed by tests before.
@pytest.fixture(scope="session")
def traced():
    """(image, maps) of one prompt, 2 steps, maps averaged over steps."""
    return traced_image_and_maps(tiny_shapes_pipeline(), steps=2, per_step=False)


@pytest.fixture(scope="session")
def traced_per_step():
    """(image, maps) of one prompt, 3 steps, maps kept per step."""
    return traced_image_and_maps(tiny_shapes_pipeline(), steps=3, per_step=True)
