"""Where the project's shipped files live: model configs and the trained student (``models/``)
and INT8 recipes (``quantize/``).

In a checkout they are the repository's top-level folders, where users read and edit them. A
wheel carries the same files as package data under ``edgeseg/_assets/<folder>/`` (the build maps
the folders there, see ``setup.py``), found with :mod:`importlib.resources`. An editable install
and a plain checkout use the folders themselves. One function decides, so every caller (config
names, shipped weights, recipes) finds them the same way in both installs.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from edgeseg.errors import ConfigError

FOLDERS = ("models", "quantize")
# The trained student the package ships (models/<name>.pt + .yaml): every default that names
# a model (CLI --weights, bench, tune, demo) points here.
SHIPPED_MODEL = "pem_lite0_512"
# A folder of extra models a user downloaded or copied (e.g. on a device), searched after the
# package's own: $EDGESEG_HOME/models, default ~/.cache/edgeseg/models.
HOME_ENV = "EDGESEG_HOME"


def asset_dir(folder: str) -> Path:
    """The installed ``models`` or ``quantize`` folder (package data in a wheel, the repository's
    folder in a checkout)."""
    if folder not in FOLDERS:
        raise ValueError(f"unknown asset folder {folder!r}; one of {FOLDERS}")
    packaged = resources.files("edgeseg").joinpath("_assets", folder)
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[1] / folder


def user_models_dir() -> Path:
    """Where users keep models that did not come with the package (``$EDGESEG_HOME/models``)."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "edgeseg") / "models"


def find_asset(folder: str, name: str, suffix: str) -> Path | None:
    """``<folder>/<name><suffix>`` (``-`` and ``_`` interchangeable), or None."""
    stem = name.replace("-", "_")
    dirs = [asset_dir(folder)] + ([user_models_dir()] if folder == "models" else [])
    for d in dirs:
        candidate = d / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def list_assets(folder: str, suffix: str) -> list[str]:
    d = asset_dir(folder)
    return sorted(p.stem for p in d.glob(f"*{suffix}")) if d.is_dir() else []


def resolve_config(name_or_path: str | os.PathLike) -> Path:
    """A YAML path as given, or a config name under ``models/`` (``teacher-swint`` ->
    ``models/teacher_swint.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    found = find_asset("models", str(name_or_path), ".yaml")
    if found is not None:
        return found
    known = [n.replace("_", "-") for n in list_assets("models", ".yaml")]
    raise ConfigError(f"no config file {path} and no model config named {str(name_or_path)!r} (known: {known})")


def resolve_weights(name_or_path: str | os.PathLike) -> Path:
    """A model file path as given, or the name of a shipped model (``pem_lite0_512`` or
    ``pem-lite0-512``): the package's ``models/`` first, then ``$EDGESEG_HOME/models``."""
    path = Path(name_or_path)
    if path.exists() or path.suffix:
        return path
    found = find_asset("models", str(name_or_path), ".pt")
    if found is not None:
        return found
    raise ConfigError(
        f"no file {path} and no shipped model named {str(name_or_path)!r} (shipped: {list_assets('models', '.pt')}); "
        f"pass a model file, or put {path.name.replace('-', '_')}.pt into {user_models_dir()} "
        f"(set ${HOME_ENV} to use another folder)")


def resolve_recipe_file(model_name: str, fmt: str) -> Path | None:
    """``quantize/<model name>_<format>.yaml`` if the project ships a tuned recipe for the model."""
    return find_asset("quantize", f"{model_name}_{fmt}", ".yaml")


def default_output(weights: Path, name: str) -> Path:
    """Where an export of ``weights`` goes when no folder is given: beside a user's checkpoint,
    but under ``./runs/export/`` for a shipped model (its folder may be an installed package)."""
    shipped = asset_dir("models").resolve()
    if weights.resolve().parent == shipped:
        return Path("runs") / "export" / f"{weights.stem}_{name}"
    return weights.with_name(f"{weights.stem}_{name}")
