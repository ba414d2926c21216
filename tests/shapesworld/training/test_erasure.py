"""Few-shot erasure of a colour: the shots hold none of it, only the text encoder changes, and
the erased model's conditioning for the colour word moves away from the original's."""

import numpy as np
import pytest
import torch

from workbench.shapesworld.segmentation import segment_by_palette
from workbench.shapesworld.training.erasure import ErasureConfig, erase_color, erasure_shots
from workbench.shapesworld.vocabulary import COLORS

from ...shapes_fixtures import tiny_shapes_pipeline


def test_the_shots_name_the_colour_and_show_none_of_it():
    scenes, captions = erasure_shots(ErasureConfig(color="red", shots=6))
    assert len(scenes) == 6 and all("red" in caption for caption in captions)
    red = list(COLORS).index("red")
    assert all((segment_by_palette(s.image) != red).all() for s in scenes)
    assert all(s.caption != c for s, c in zip(scenes, captions))  # the pictures are of other colours
    with pytest.raises(ValueError, match="'teal' is not a ShapesWorld colour"):
        erasure_shots(ErasureConfig(color="teal"))


def test_erasure_changes_only_the_text_encoder():
    pipe = tiny_shapes_pipeline()
    before = {k: v.clone() for k, v in pipe.text_encoder.state_dict().items()}
    unet = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    erased, summary = erase_color(pipe, ErasureConfig(steps=5, batch_size=4, shots=4, learning_rate=1e-3))
    assert summary["steps"] == 5 and len(summary["captions"]) == 4
    assert erased.unet is pipe.unet and all(torch.equal(v, unet[k]) for k, v in pipe.unet.state_dict().items())
    assert all(torch.equal(v, before[k]) for k, v in pipe.text_encoder.state_dict().items())  # the original is untouched
    changed = [k for k, v in erased.text_encoder.state_dict().items() if not torch.equal(v, before[k])]
    assert changed
    with torch.no_grad():
        red = [p.encode_text(["a large red circle on a gray background"])[0] for p in (pipe, erased)]
    assert not torch.allclose(red[0], red[1])
    image = erased(["a large red circle on a gray background"], num_inference_steps=2, output_type="np").images
    assert np.isfinite(image).all()
