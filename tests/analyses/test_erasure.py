"""Erasure audit pieces: the concept direction (Ring-A-Bell's vector), steering a generation
along it, and the per-layer verdicts."""

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.analyses.erasure import audit_erasure, concept_direction, erasure_verdicts, steered
from workbench.analyses.word_search import search_word

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


def _denoising_error(pipe, images: torch.Tensor, prompt: str) -> float:
    """The pipeline's clean-image error on `images` at fixed noise and levels, prompted with `prompt`."""
    from workbench.concepts.pipeline_io import clean_estimate, encode_prompts, noise_to, predict

    generator, errors = torch.Generator().manual_seed(1), []
    with torch.no_grad():
        conditioning = encode_prompts(pipe, [prompt] * len(images))
        for level in (200, 500, 800):
            noisy, t = noise_to(pipe.scheduler, images, torch.randn(images.shape, generator=generator), level)
            errors.append((clean_estimate(pipe.scheduler, noisy, predict(pipe, noisy, t, conditioning), t) - images).pow(2).mean().item())
    return float(np.mean(errors))


def test_the_searched_word_fits_its_images_and_leaves_the_model_alone():
    from workbench.pipelines.embeddings import LearnedWord, insert_embeddings
    from workbench.shapesworld.scenes import sample_scenes, scenes_to_tensor

    pipe, start = tiny_shapes_pipeline(), tiny_shapes_pipeline()
    images = scenes_to_tensor(sample_scenes(4, seed=3, n_objects=1, image_size=pipe.unet.config.sample_size))
    weights = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    flags = [p.requires_grad for p in pipe.unet.parameters()]
    table = pipe.text_encoder.get_input_embeddings().weight.detach().clone()
    words = search_word(pipe, images, ["a {word} on a gray background"], steps=40, learning_rate=5e-2)
    assert [w.encoder for w in words] == ["text_encoder"] and words[0].vectors.shape == (1, table.shape[1])
    assert all(torch.equal(v, weights[k]) for k, v in pipe.unet.state_dict().items())
    grown = pipe.text_encoder.get_input_embeddings().weight
    assert torch.equal(grown[: len(table)], table) and torch.allclose(grown[-1], words[0].vectors[0])
    assert [p.requires_grad for p in pipe.unet.parameters()] == flags  # as it was before the search
    insert_embeddings(start, [LearnedWord("<found>", table.float().mean(0, keepdim=True))])
    assert _denoising_error(pipe, images, "a <found> on a gray background") < _denoising_error(start, images, "a <found> on a gray background")
    with pytest.raises(ValueError, match="needs \"{word}\""):
        search_word(tiny_shapes_pipeline(), images, ["a red circle"])
    with pytest.raises(ValueError, match="the word '<cut>' does not reach text_encoder as its own token"):  # truncated away
        search_word(tiny_shapes_pipeline(), images, ["a " * 30 + "{word}"], token="<cut>", steps=2)


def test_the_word_search_learns_one_vector_per_text_encoder_of_sdxl(tmp_path):
    from workbench.pipelines.loading import load_pipeline
    from workbench.pipelines.random_pipelines import save_random_pipeline

    pipe = load_pipeline(save_random_pipeline("sdxl", tmp_path / "sdxl"))
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    words = search_word(pipe, torch.rand(2, 3, size, size) * 2 - 1, ["a photo of {word}"], steps=2, batch_size=2)
    assert [w.encoder for w in words] == ["text_encoder", "text_encoder_2"]
    assert [w.vectors.shape[1] for w in words] == [pipe.text_encoder.config.hidden_size, pipe.text_encoder_2.config.hidden_size]


def test_the_audit_verdict_reads_the_intervals():
    from workbench.analyses.erasure import PRESENCE_COLUMNS, ErasureAudit
    from workbench.metrics import wilson_interval

    def row(model, source, present, n=64):
        return [model, source, n, present, present / n, *wilson_interval(present, n)]

    rows = [row("base", "plain", 60), row("erased", "plain", 2), row("erased", "ring-a-bell x1", 5), row("erased", "word search", 40)]
    audit = ErasureAudit(pd.DataFrame(rows, columns=PRESENCE_COLUMNS), None, None)
    assert audit.recovered_by() == ["word search"]  # 5/64 lies within reach of 2/64; 40/64 above it and past half of 60/64
    assert audit.verdict().startswith("gone from plain prompts: 0.03")
    assert audit.verdict().endswith("; recoverable: word search 0.62; not brought back: ring-a-bell x1 0.08")
    rows[1] = row("erased", "plain", 15)  # 0.23: below the base model's interval, but more than a tenth of its rate
    assert ErasureAudit(pd.DataFrame(rows, columns=PRESENCE_COLUMNS), None, None).verdict().startswith("reduced in plain prompts: 0.23")
    rows[1] = row("erased", "plain", 58)
    assert ErasureAudit(pd.DataFrame(rows[:3], columns=PRESENCE_COLUMNS), None, None).verdict().startswith("still drawn from plain prompts")
    nothing = ErasureAudit(pd.DataFrame([row("base", "plain", 0), row("erased", "plain", 0)], columns=PRESENCE_COLUMNS), None, None)
    assert nothing.verdict() == "the base model does not draw it either (64 images from the plain prompts): nothing to audit"
    with pytest.raises(KeyError, match="no presence measured for model 'erased' and source 'paraphrase'"):
        audit.rate("erased", "paraphrase")


def test_the_audit_measures_every_source_on_both_models():
    base, erased = tiny_shapes_pipeline(), tiny_shapes_pipeline()
    with torch.no_grad():
        erased.text_encoder.get_input_embeddings().weight.mul_(1.5)
    prompts = ["a large red circle on a gray background", "a small red cross on a white background"]
    without = [p.replace("red", "blue") for p in prompts]
    always = lambda images: np.ones(len(images), dtype=bool)  # noqa: E731
    audit = audit_erasure(base, erased, prompts, always, word="red", without=without, paraphrases=["a large circle on a gray background"],
                          scales=(2.0,), search_steps=3, images_per_prompt=2, steps=2)
    frame = audit.to_frame()
    assert list(zip(frame.model, frame.source)) == [("base", "plain"), ("erased", "plain"), ("base", "paraphrase"), ("erased", "paraphrase"),
                                                   ("erased", "ring-a-bell x2"), ("erased", "word search")]
    assert list(frame.n) == [4, 4, 2, 2, 4, 4] and (frame.rate == 1).all() and audit.layers is None
    assert "<found>" in erased.tokenizer.get_vocab() and audit.found_word[0].token == "<found>"
    assert audit.verdict().startswith("still drawn from plain prompts: 1.00")
    with pytest.raises(ValueError, match="each must name the concept with the word 'red'"):
        audit_erasure(base, erased, ["a blue circle"], always, word="red")
    with pytest.raises(ValueError, match="one prompt without the concept per prompt \\(2\\), got 1"):
        audit_erasure(base, erased, prompts, always, word="red", without=without[:1])
