"""Shared fixtures. Tests never touch the network: the hub is switched off before any import."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest  # noqa: E402

from workbench.pipelines.random_pipelines import save_random_pipeline  # noqa: E402

from .shapes_fixtures import tiny_shapes_pipeline  # noqa: E402


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory):
    """A random-weight Stable Diffusion 1.x-architecture pipeline saved with save_pretrained."""
    return save_random_pipeline("sd15", tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_shapes():
    """A random-weight ShapesPipeline at small width (fast; no concepts)."""
    return tiny_shapes_pipeline()


@pytest.fixture
def tiny_shapes_fresh():
    """A tiny ShapesPipeline of its own, for tests that change it (e.g. add tokens)."""
    return tiny_shapes_pipeline()


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same global random state, whatever ran before it."""
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
