"""Untrusted checkpoints: truncated, foreign, code-carrying pickles, config mismatch."""
from __future__ import annotations

import os
import pickle
import dataclasses

import pytest
import torch

from edgeseg.errors import CheckpointError
from edgeseg.inference.result import LabelSpace
from edgeseg.modeling.pem import build_pem
from edgeseg.checkpoint import load_checkpoint, save_checkpoint
from edgeseg.modeling.build import load_model
from tests.conftest import tiny_model_config


@pytest.fixture()
def good_ckpt(tmp_path):
    cfg = tiny_model_config()
    model = build_pem(cfg)
    labels = LabelSpace([f"c{i}" for i in range(13)], [i < 8 for i in range(13)])
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"model": model.state_dict(), "model_config": dataclasses.asdict(cfg),
                           "label_space": dataclasses.asdict(labels)})
    return path


def test_roundtrip(good_ckpt):
    model, ckpt = load_model(good_ckpt)
    assert ckpt["format"] == "edgeseg-checkpoint" and not model.training
    assert not list(good_ckpt.parent.glob("*.tmp"))  # atomic write leaves no temp file


def test_missing_and_truncated(good_ckpt, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good_ckpt.read_bytes()[: good_ckpt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt is truncated or corrupt"):
        load_checkpoint(cut)


def test_foreign_checkpoint(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="not an edgeseg checkpoint"):
        load_checkpoint(path)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_carrying_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "edgeseg-checkpoint", "model": _Exploit(marker)}, path, pickle_protocol=2)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()
    # sanity: the file really does execute code when unpickled unsafely
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Exploit(marker)))
    pickle.loads(raw.read_bytes())
    assert marker.exists()


def test_config_that_does_not_match_checkpoint(good_ckpt):
    with pytest.raises(CheckpointError, match="does not match the model config"):
        load_model(good_ckpt, config=tiny_model_config(hidden_dim=64))


def test_init_from_copies_every_same_named_same_shaped_tensor(good_ckpt, tmp_path):
    from edgeseg.checkpoint import init_from_checkpoint

    source = load_checkpoint(good_ckpt)["model"]
    cut = build_pem(tiny_model_config(dec_layers=2, mask_stride=8, upsample="bilinear", hidden_dim=16))
    record = init_from_checkpoint(cut, good_ckpt)
    own = cut.state_dict()
    same = [k for k in own if k in source and source[k].shape == own[k].shape]
    assert record["loaded"] == len(same) > 0 and record["kept"] == len(own) - len(same) > 0
    assert record["ignored"] == len(source) - len(same) > 0  # the third layer, the stride-4 level
    for k in same:
        torch.testing.assert_close(own[k], source[k].to(own[k].dtype), msg=k)
    foreign = tmp_path / "foreign.pt"
    save_checkpoint(foreign, {"model": {"other.weight": torch.zeros(3)}, "model_config": {}, "label_space": {}})
    with pytest.raises(CheckpointError, match="init_from"):
        init_from_checkpoint(cut, foreign)
