import torch

from workbench.models.word_encoder import WordEncoder, WordEncoderConfig
from workbench.training.checkpoint import load_state
from workbench.training.word_encoder import EncoderTrainingConfig, train_word_encoder

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
