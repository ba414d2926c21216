"""Two tiny ShapesWorld checkpoints and a base probe for the sweep tests."""

import json

import pytest

from ..shapes_fixtures import tiny_shapes_pipeline

PROMPTS = ["a large red circle on a gray background", "a small blue square on a white background", "a large green cross on a black background"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two tiny ShapesWorld checkpoints (random weights, two seeds) saved as pipeline folders,
    and a base probe naming the first."""
    root = tmp_path_factory.mktemp("sweep")
    for seed in (0, 1):
        tiny_shapes_pipeline(seed).save_pretrained(root / f"step-{seed}")
    (root / "base.toml").write_text(
        f'name = "leak"\nseed = 0\n[model]\npipeline = "{root / "step-0"}"\nsteps = 2\n'
        f"[inputs]\nprompts = {json.dumps(PROMPTS)}\n[attention]\n")
    return root
