
import numpy as np
import torch
from diffusers import DDIMScheduler

from workbench.shapesworld.models.word_encoder import WordEncoder, WordEncoderConfig
from workbench.shapesworld.training.checkpoint import load_state
from workbench.shapesworld.training.denoising import denoising_loss, min_snr_weights
from workbench.shapesworld.training.word_encoder import EncoderTrainingConfig, split_roles, train_word_encoder
from workbench.shapesworld import sample_scenes

SMALL = WordEncoderConfig(width=16, layers=2, heads=2, mapping_hidden=16, feature_layers=(2, 1))


def test_encoder_words_have_the_text_width_and_round_trip(tmp_path):
    encoder = WordEncoder(SMALL).eval()
    images = torch.rand(3, 3, 32, 32)
    words = encoder(images)
    assert words.shape == (3, 2, 64)
    encoder.save_pretrained(tmp_path / "enc")
    assert torch.equal(WordEncoder.from_pretrained(tmp_path / "enc")(images), words)


def test_training_moves_the_encoder_and_resumes(tmp_path):
    cfg = EncoderTrainingConfig(steps=2, batch_size=2, checkpoint_every=1)
    folder = train_word_encoder(tmp_path, cfg, SMALL)
    first = load_state(tmp_path / "checkpoint.pt")
    assert first["step"] == 2 and (folder / "model.safetensors").is_file()
    train_word_encoder(tmp_path, EncoderTrainingConfig(steps=3, batch_size=2, checkpoint_every=1), SMALL)
    assert load_state(tmp_path / "checkpoint.pt")["step"] == 3
    torch.manual_seed(0)  # the trainer seeds the same way before building the encoder
    initial = WordEncoder(SMALL).state_dict()
    assert any(not torch.equal(value, first["encoder"][key]) for key, value in initial.items())


def test_split_roles_keep_one_side_and_say_what_it_must_redraw():
    scenes = sample_scenes(200, seed=3, n_objects=(1,))
    keep, targets, weights = split_roles(scenes, 3, 0.5, np.random.default_rng(0))
    primary = (keep[:, 1:, 0] == 0).all(1) & (keep[:, 0, 0] == 1)
    auxiliary = (keep[:, 0, 0] == 0) & (keep[:, 1:, 0] == 1).all(1)
    full = (keep[:, :, 0] == 1).all(1)
    assert (primary | auxiliary | full).all() and 0.15 < primary.float().mean() < 0.35 and 0.35 < full.float().mean() < 0.65
    for b, scene in enumerate(scenes):
        expected = scene.object_masks.any(0) if primary[b] else np.ones((32, 32), bool)
        assert np.array_equal(weights[b, 0].numpy(), expected.astype(np.float32))
        # the auxiliary words redraw the scene with its object painted over by the background
        drawn = ((targets[b].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        background = scene.background_mask
        assert np.array_equal(drawn[background], scene.image[background])
        assert np.array_equal(drawn[~background], scene.image[~background]) == (not auxiliary[b])
    keep, _, _ = split_roles(scenes, 3, 0.0, np.random.default_rng(0))
    assert (keep == 1).all()


def test_pixel_weighted_loss_averages_over_the_weighted_pixels_only():
    class Echo(torch.nn.Module):  # predicts the noisy input: its error is known in closed form
        def forward(self, x, t, encoder_hidden_states):
            return type("Out", (), {"sample": x})()

    scheduler = DDIMScheduler(num_train_timesteps=1000)
    images = torch.zeros(2, 3, 4, 4)
    images[:, :, :2] = 1.0  # top half bright
    weights = torch.zeros(2, 1, 4, 4)
    weights[:, :, 2:] = 1.0  # scored on the bottom half only, where images are 0
    whole = denoising_loss(Echo(), scheduler, images, None, torch.Generator().manual_seed(0), 5.0)
    bottom = denoising_loss(Echo(), scheduler, images, None, torch.Generator().manual_seed(0), 5.0, weights)
    # by hand: the same noise and timesteps, error averaged over the bottom rows only
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(images.shape, generator=g)
    t = torch.randint(0, 1000, (2,), generator=g)
    error = ((scheduler.add_noise(images, noise, t) - noise) ** 2).mean(1, keepdim=True)
    snr = min_snr_weights(scheduler, t, 5.0)
    assert torch.allclose(whole, (error.mean((1, 2, 3)) * snr).mean())
    assert torch.allclose(bottom, (error[:, :, 2:].mean((1, 2, 3)) * snr).mean())
    assert not torch.allclose(whole, bottom)
