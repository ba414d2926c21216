import json

import pytest
import torch

from workbench.pipelines.loading import load_pipeline
from workbench.shapesworld.models.pipeline import ShapesModelConfig
from workbench.shapesworld.training.checkpoint import load_state
from workbench.shapesworld.training.denoising import min_snr_weights
from workbench.shapesworld.training.diffusion import DiffusionTrainingConfig, draw_batch, train_diffusion
from workbench.shapesworld.scenes import scenes_to_tensor

from ...shapes_fixtures import TINY_CONFIG

CFG = DiffusionTrainingConfig(steps=3, batch_size=4, checkpoint_every=2, warmup_steps=2)


def test_batches_are_a_function_of_seed_and_step():
    a_scenes, a_captions = draw_batch(5, CFG, 32)
    b_scenes, b_captions = draw_batch(5, CFG, 32)
    a_images, b_images, c_images = (scenes_to_tensor(draw_batch(step, CFG, 32)[0]) for step in (5, 5, 6))
    assert a_scenes == b_scenes and a_captions == b_captions
    assert torch.equal(a_images, b_images)
    assert not torch.equal(a_images, c_images)
    assert a_images.shape == (4, 3, 32, 32) and a_images.min() >= -1 and a_images.max() <= 1


def test_resumed_training_equals_uninterrupted_training(tmp_path):
    straight = tmp_path / "straight"
    train_diffusion(straight, CFG, TINY_CONFIG)
    resumed = tmp_path / "resumed"
    train_diffusion(resumed, DiffusionTrainingConfig(**{**CFG.__dict__, "steps": 2}), TINY_CONFIG)
    assert load_state(resumed / "checkpoint.pt")["step"] == 2
    train_diffusion(resumed, CFG)  # a resumed run keeps the sizes it started with
    a, b = load_state(straight / "checkpoint.pt"), load_state(resumed / "checkpoint.pt")
    assert a["step"] == b["step"] == 3
    for key in a["unet"]:
        assert torch.equal(a["unet"][key], b["unet"][key]), key
    log = [json.loads(line) for line in (resumed / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2, 3]


def test_a_run_cannot_resume_with_other_model_sizes(tmp_path):
    train_diffusion(tmp_path, DiffusionTrainingConfig(**{**CFG.__dict__, "steps": 2}), TINY_CONFIG)
    wider = ShapesModelConfig.from_dict({**TINY_CONFIG.to_dict(), "block_out_channels": [8, 16, 32]})
    with pytest.raises(ValueError, match="cannot resume") as error:
        train_diffusion(tmp_path, CFG, wider)
    assert "[8, 16, 32]" not in str(error.value) and "(8, 16, 32)" in str(error.value)
    assert load_state(tmp_path / "checkpoint.pt")["step"] == 2


def test_exported_pipeline_loads_and_holds_the_ema_weights(tmp_path):
    folder = train_diffusion(tmp_path, CFG, TINY_CONFIG)
    pipe = load_pipeline(folder)
    state = load_state(tmp_path / "checkpoint.pt")
    for key, value in pipe.unet.state_dict().items():
        assert torch.equal(value, state["ema_unet"][key]), key
    assert not (tmp_path / ".pipeline.old").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_min_snr_weights_cap_low_noise_steps():
    from workbench.shapesworld.models.pipeline import build_components

    scheduler = build_components(TINY_CONFIG)["scheduler"]
    t = torch.tensor([0, 500, 999])
    weights = min_snr_weights(scheduler, t, gamma=5.0)
    snr = scheduler.alphas_cumprod[t] / (1 - scheduler.alphas_cumprod[t])
    expected = torch.minimum(snr, torch.tensor(5.0)) / snr
    assert torch.allclose(weights, expected)
    assert weights[0] < 1.0 and weights[2] == 1.0


def test_learning_rate_warms_up_then_anneals_linearly_to_zero():
    cfg = DiffusionTrainingConfig(steps=1000, learning_rate=1e-3, warmup_steps=100, anneal_from=600)
    assert cfg.learning_rate_at(0) == pytest.approx(1e-5)  # (0 + 1) / 100 of the rate
    assert cfg.learning_rate_at(99) == pytest.approx(1e-3) and cfg.learning_rate_at(599) == pytest.approx(1e-3)
    assert cfg.learning_rate_at(600) == pytest.approx(1e-3)  # (1000 - 600) / 400
    assert cfg.learning_rate_at(800) == pytest.approx(5e-4)
    assert cfg.learning_rate_at(999) == pytest.approx(1e-3 / 400)
    assert DiffusionTrainingConfig(steps=1000, warmup_steps=1).learning_rate_at(999) == pytest.approx(1e-3)  # no anneal


def test_a_fresh_run_starts_from_an_exported_pipelines_weights(tmp_path):
    first = train_diffusion(tmp_path / "first", CFG, TINY_CONFIG)
    exported = load_pipeline(first).unet.state_dict()
    zero_steps = DiffusionTrainingConfig(**{**CFG.__dict__, "steps": 0})
    again = train_diffusion(tmp_path / "again", zero_steps, TINY_CONFIG, init_from=first)
    for key, value in load_pipeline(again).unet.state_dict().items():
        assert torch.equal(value, exported[key]), key
    wider = ShapesModelConfig.from_dict({**TINY_CONFIG.to_dict(), "block_out_channels": [8, 16, 32]})
    with pytest.raises(ValueError, match=r"unet.*should have shape.*give the sizes"):
        train_diffusion(tmp_path / "wider", zero_steps, wider, init_from=first)


def test_grounding_targets_put_each_word_on_its_region():
    from workbench.shapesworld.training.grounding import grounding_targets

    scenes, _ = draw_batch(0, DiffusionTrainingConfig(batch_size=8, caption_dropout=0.0, two_object_fraction=1.0), 32)
    masks, grounded = grounding_targets(scenes[:1], [scenes[0].caption], 20)
    words = scenes[0].caption.split()  # "a large red circle and a small blue square on a gray background"
    for index, word in enumerate(words):
        token = index + 1
        if word in ("a", "and", "on", "background"):
            assert not grounded[0, token]
        elif word == words[-2]:  # the background colour
            assert torch.equal(masks[0, token], torch.from_numpy(scenes[0].background_mask.astype("float32")))
        else:
            obj = 0 if index < words.index("and") else 1
            assert torch.equal(masks[0, token], torch.from_numpy(scenes[0].object_masks[obj].astype("float32"))), word
    assert not grounded[0, 0] and not grounded[0, len(words) + 1]


def test_grounding_loss_known_answers():
    from workbench.shapesworld.training.grounding import grounding_loss

    masks = torch.zeros(1, 2, 2, 2)
    masks[0, 1, 0, 0] = 1.0  # token 1 belongs to the top-left pixel
    grounded = torch.tensor([[False, True]])
    on_region = torch.zeros(1, 1, 4, 2)
    on_region[0, 0, 0, 1] = 1.0  # all of token 1's attention on its pixel
    spread = torch.full((1, 1, 4, 2), 0.5)  # a quarter of it there
    assert grounding_loss([on_region], masks, grounded).item() == 0.0
    assert grounding_loss([spread], masks, grounded).item() == pytest.approx(0.75**2)
    assert grounding_loss([on_region, spread], masks, grounded).item() == pytest.approx(0.75**2 / 2)
    assert grounding_loss([spread], masks, torch.zeros(1, 2, dtype=torch.bool)).item() == 0.0


def test_grounding_pulls_attention_onto_the_objects(tmp_path):
    cfg = DiffusionTrainingConfig(steps=6, batch_size=4, warmup_steps=1, grounding_weight=1.0, learning_rate=1e-2, caption_dropout=0.0)
    train_diffusion(tmp_path, cfg, TINY_CONFIG)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert all(0 < row["grounding"] <= 1 for row in log)
    assert log[-1]["grounding"] < log[0]["grounding"]
    with pytest.raises(ValueError, match="grounding_weight must be >= 0"):
        DiffusionTrainingConfig(grounding_weight=-1.0)
