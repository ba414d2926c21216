import pytest
import torch

from workbench.files import atomic_path
from workbench.shapesworld.training.checkpoint import load_state, save_state


def test_interrupted_write_leaves_the_old_file_and_no_debris(tmp_path):
    target = tmp_path / "state.pt"
    save_state({"step": 1}, target)
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert load_state(target) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_folders_are_replaced_whole(tmp_path):
    target = tmp_path / "model"
    for version in ("1", "2"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "version").write_text(version)
    assert (target / "version").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_states_load_without_unpickling_objects(tmp_path):
    target = tmp_path / "evil.pt"
    torch.save({"object": object()}, target)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        load_state(target)
