"""Checkpoint files: atomic save, safe load (no code execution), clear errors.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values, read
back with ``torch.load(weights_only=True)``: a pickle that carries code is refused.

This module knows files and state dicts, not models (building a model from a checkpoint is
``edgeseg.modeling.build.model_from_checkpoint``), so training, export and the torch adapter
all read checkpoints through it without importing each other. torch is imported when a
checkpoint is read or written: ``file_sha256`` works on a device install.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from edgeseg.version import __version__
from edgeseg.errors import CheckpointError, EdgesegError

FORMAT = "edgeseg-checkpoint"


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise EdgesegError("reading or writing a .pt checkpoint needs torch: pip install 'edgeseg[train]' "
                           "(a device install runs exported .onnx / .xml / .tflite models without it)") from exc
    return torch


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format tag and version) atomically: temp file, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch = _torch()
    data = {"format": FORMAT, "edgeseg_version": __version__, **payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(data, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read an edgeseg checkpoint without executing code; raise CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty")
    torch = _torch()
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint {path} was refused: it contains pickled objects other than tensors and "
            f"plain values (possibly code), and edgeseg loads checkpoints with weights_only=True "
            f"({str(exc).splitlines()[0]})"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        keys = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path} is not an edgeseg checkpoint (no format tag '{FORMAT}'; found {keys})")
    for key in ("model", "model_config", "label_space"):
        if key not in data:
            raise CheckpointError(f"checkpoint {path} lacks '{key}'")
    return data


def file_sha256(path: str | Path, length: int = 16) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def load_state_into(model, state: dict[str, Any], source: str) -> None:
    """``load_state_dict`` with an error that lists missing / unexpected / mis-shaped keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} with other shapes (e.g. {shapes[:3]})")
        raise CheckpointError(f"{source} does not match the model config: " + "; ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


def init_from_checkpoint(model, path: str | Path) -> dict[str, Any]:
    """Copy into ``model`` every tensor of checkpoint ``path`` whose name and shape match its own.

    For starting a cut-down student from a trained one (fewer decoder layers or backbone blocks
    keep their names; the heads are shared by every layer, so a cut decoder still predicts).
    Returns ``{"path", "loaded", "kept", "ignored"}`` (tensor counts: copied, left as built,
    in the checkpoint but unused); a checkpoint that matches nothing is an error.
    """
    state = load_checkpoint(path).get("model")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: no model weights to start from (train.init_from)")
    own = model.state_dict()
    hits = {k: v.to(own[k].dtype) for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not hits:
        raise CheckpointError(f"{path}: none of its {len(state)} tensors has the name and shape of one of the "
                              f"model's (train.init_from needs a checkpoint of the same family)")
    model.load_state_dict(hits, strict=False)
    return {"path": str(path), "loaded": len(hits), "kept": len(own) - len(hits), "ignored": len(state) - len(hits)}


# Keys a deployable checkpoint keeps: the weights and what is needed to rebuild, label and
# threshold them; optimizer state, the per-step history and resume counters are dropped.
_DEPLOY_KEYS = ("model", "model_config", "label_space", "thresholds", "calibration", "train_config", "metrics", "step",
                "backbone_weights")


def strip_checkpoint(src: str | Path, dst: str | Path, half: bool = True) -> dict[str, Any]:
    """Write a deployable copy of ``src``: weights (FP16 if ``half``) plus config, labels and
    thresholds; no optimizer or training history. Loading casts the weights back to the model's
    dtype, so an FP16-stored checkpoint runs in FP32 (Ultralytics' ``strip_optimizer`` idea).
    Returns ``{"bytes_in", "bytes_out", "parameters"}``."""
    src, dst = Path(src), Path(dst)
    ckpt = load_checkpoint(src)
    out = {k: ckpt[k] for k in _DEPLOY_KEYS if k in ckpt}
    if half:
        out["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    out["stored_dtype"] = "float16" if half else "float32"
    out["source"] = {"file": src.name, "sha256": file_sha256(src)}
    out.pop("format", None)
    save_checkpoint(dst, out)
    return {"bytes_in": src.stat().st_size, "bytes_out": dst.stat().st_size,
            "parameters": int(sum(v.numel() for v in ckpt["model"].values() if v.is_floating_point()))}

