import json

import pytest
import torch

from workbench.models.elite_local import LocalMapping, load_local_mapper, local_tokens, patch_mask
from workbench.models.loading import load_pipeline
from workbench.models.word_encoder import WordEncoder
from workbench.training.checkpoint import load_state
from workbench.training.local_mapping import LocalTrainingConfig, train_local_mapping

from .test_word_encoder_training import SMALL


def test_patch_mask_marks_patches_holding_any_object_pixel():
    masks = torch.zeros(1, 8, 8, dtype=torch.bool)
    masks[0, 0, 5] = True  # row 0, column 5: patch (0, 1) of a 2x2 grid of 4x4 patches
    masks[0, 7, 0] = True  # patch (1, 0)
    assert patch_mask(masks, 4)[0, :, 0].tolist() == [0.0, 1.0, 1.0, 0.0]


def test_local_tokens_see_only_the_objects_patches():
    torch.manual_seed(0)
    mapper = LocalMapping(4, 6, n_layers=2, hidden=8)
    features = [torch.randn(1, 5, 4) for _ in range(2)]  # CLS + a 2x2 grid of patches
    masks = torch.zeros(1, 8, 8, dtype=torch.bool)
    masks[0, 1, 1] = True  # only patch 0 holds the object
    tokens = local_tokens(mapper, features, masks, patch_size=4)
    assert tokens.shape == (1, 4, 6)
    changed = [torch.cat([f[:, :2], torch.randn(1, 3, 4)], dim=1) for f in features]  # other patches differ
    assert torch.allclose(local_tokens(mapper, changed, masks, patch_size=4), tokens)
    blank = [torch.cat([f[:, :1], torch.zeros(1, 4, 4)], dim=1) for f in features]
    assert torch.allclose(tokens[:, 1:], mapper(blank)[:, 1:])


def test_training_writes_elites_layout_moves_it_and_resumes(tmp_path):
    WordEncoder(SMALL).save_pretrained(tmp_path / "encoder")
    cfg = LocalTrainingConfig(steps=2, batch_size=2, hidden=8, checkpoint_every=1)
    path = train_local_mapping(tmp_path / "run", cfg, encoder=tmp_path / "encoder")
    pipe = load_pipeline("shapes")
    mapper, projections = load_local_mapper(path, pipe.unet, SMALL.width, SMALL.text_width, hidden=8)
    assert mapper.n_layers == SMALL.n_words and set(projections) == {p for p, m in pipe.unet.named_modules() if getattr(m, "is_cross_attention", False)}
    # the projections start as the layer's own to_k / to_v and training moves them
    layer, (to_k, _) = next(iter(projections.items()))
    assert not torch.equal(to_k.weight, pipe.unet.get_submodule(layer).to_k.weight)
    train_local_mapping(tmp_path / "run", LocalTrainingConfig(steps=3, batch_size=2, hidden=8, checkpoint_every=1), encoder=tmp_path / "encoder")
    assert load_state(tmp_path / "run" / "checkpoint.pt")["step"] == 3
    assert [json.loads(line)["step"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()] == [1, 2, 3]
    with pytest.raises(ValueError, match="strength must be > 0"):
        train_local_mapping(tmp_path / "bad", LocalTrainingConfig(steps=1, strength=0.0), encoder=tmp_path / "encoder")
    assert not (tmp_path / "bad").exists()
