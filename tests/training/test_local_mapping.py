import json

import pytest
import torch

from workbench.models.elite_local import load_local_mapper, patch_mask
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
