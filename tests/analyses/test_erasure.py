"""Erasure audit pieces: the concept direction (Ring-A-Bell's vector), steering a generation
along it, and the per-layer verdicts."""

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.analyses.erasure import concept_direction, erasure_verdicts, steered

from ..shapes_fixtures import tiny_shapes_pipeline


def test_the_direction_is_the_mean_difference_and_steering_adds_it_to_the_prompt_only():
    pipe = tiny_shapes_pipeline()
    with_red, without = ["a large red circle", "a small red cross"], ["a large blue circle", "a small blue cross"]
    direction = concept_direction(pipe, with_red, without)
    states = [pipe.encode_text(p)[0] for p in (with_red, without)]
    assert torch.allclose(direction, (states[0] - states[1]).mean(0), atol=1e-6)
    seen = []
    handle = pipe.unet.register_forward_pre_hook(lambda m, a, k: seen.append(k["encoder_hidden_states"].clone()), with_kwargs=True)
    try:
        with steered(pipe, direction, 2.0):
            pipe(["a large blue circle"], num_inference_steps=2, guidance_scale=2.0, output_type="np")
            pipe(["a large blue circle"], num_inference_steps=2, guidance_scale=2.0, output_type="np")  # each generation steered
        pipe(["a large blue circle"], num_inference_steps=2, guidance_scale=2.0, output_type="np")  # closed: plain again
    finally:
        handle.remove()
    plain_prompt, empty = pipe.encode_text(["a large blue circle"])[0], pipe.encode_text([""])[0]
    for call in (0, 2):  # [uncond; cond] batches of each steered generation
        assert torch.allclose(seen[call][0], empty[0], atol=1e-5)  # the negative prompt is left alone
        assert torch.allclose(seen[call][1], plain_prompt[0] + 2.0 * direction, atol=1e-5)
    assert torch.allclose(seen[4][1], plain_prompt[0], atol=1e-6)
    with pytest.raises(ValueError, match="paired prompts: 2 with the concept, 1 without"):
        concept_direction(pipe, with_red, without[:1])


def test_verdicts_follow_the_evidence():
    frame = pd.DataFrame({"concept": "red", "layer": ["te.0", "unet.mid", "unet.up"], "cav_accuracy_base": [0.95, 0.9, 0.9],
                          "cav_accuracy_other": [0.55, 0.92, 0.9], "cav_cosine": [0.1, 0.8, 0.9], "tcav_base": [0.9, 0.9, 0.9],
                          "tcav_other": [0.5, 0.5, 0.95], "p_value_base": 0.001, "p_value_other": [0.6, 0.4, 0.001],
                          "significant_base": True, "significant_other": [False, False, True]})
    verdicts = erasure_verdicts(frame)
    assert list(verdicts.verdict) == ["gone", "hidden but readable", "still driving"]
    assert np.allclose(verdicts.cav_accuracy_erased, [0.55, 0.92, 0.9])
