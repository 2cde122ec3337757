"""Calibration and validation images for INT8, through the exact preprocess of the runtime path.

Calibration images come from the data set's train split, validation images (PQ under the INT8
budget) from its val split, so the statistics NNCF collects are never scored on. Each image goes
through :func:`edgeseg.inference.preprocess.preprocess` with the artifact's own S / mean / std,
which is what the device will feed the network.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.data.coco_panoptic import CocoPanoptic, PanopticSample
from edgeseg.errors import DatasetError, EdgesegError
from edgeseg.inference.preprocess import preprocess

# Fewer images than this give activation ranges from too few samples to trust (NNCF's own
# default is 300); a CI-sized run may go down to this floor, never below.
MIN_CALIBRATION_IMAGES = 8
MIN_VALIDATION_IMAGES = 4


class CalibrationError(EdgesegError):
    """The calibration or validation data cannot support an INT8 model."""


@dataclass
class QuantData:
    """Preprocessed calibration inputs and the raw validation samples (for PQ)."""

    calibration: list[np.ndarray]  # each [1, 3, S, S] float32
    validation: list[PanopticSample]
    categories: list[dict]
    root: Path


def _check_image(sample: PanopticSample, split: str, size: int) -> None:
    img = sample.image
    if img.ndim != 3 or img.shape[2] != 3:
        raise CalibrationError(f"{split}/{sample.file_name}: calibration images must be RGB (H x W x 3), got shape {img.shape}")
    longest = max(img.shape[:2])
    if longest * 4 < size:
        raise CalibrationError(f"{split}/{sample.file_name}: image is {img.shape[1]}x{img.shape[0]}, under a quarter of the "
                         f"model input {size}; calibrating on upsampled blur gives wrong activation ranges")


def _open_split(root: Path, split: str, purpose: str) -> CocoPanoptic:
    try:
        return CocoPanoptic(root, split)
    except DatasetError as exc:
        raise CalibrationError(f"{root}: INT8 needs a '{split}' split for {purpose} ({exc})") from exc


def load_quant_data(root: str | Path, size: int, mean, std, subset: int = 300, validation_images: int = 50,
                    calibration_split: str = "train", validation_split: str = "val") -> QuantData:
    """``subset`` calibration inputs from ``calibration_split`` and ``validation_images`` samples
    from ``validation_split``; clear errors for a missing split, too few or wrong images."""
    root = Path(root)
    if not root.exists():
        raise CalibrationError(f"{root}: calibration data folder not found")
    if subset < MIN_CALIBRATION_IMAGES:
        raise CalibrationError(f"--subset {subset} is below the minimum of {MIN_CALIBRATION_IMAGES} calibration images")
    if validation_images < MIN_VALIDATION_IMAGES:
        raise CalibrationError(f"{validation_images} validation images is below the minimum of {MIN_VALIDATION_IMAGES}")
    calib_ds = _open_split(root, calibration_split, "calibration")
    val_ds = _open_split(root, validation_split, "validation (PQ under the INT8 budget)")
    if len(calib_ds) < MIN_CALIBRATION_IMAGES:
        raise CalibrationError(f"{root}/{calibration_split}: {len(calib_ds)} image(s), fewer than the "
                               f"{MIN_CALIBRATION_IMAGES} needed to calibrate INT8")
    if len(val_ds) < MIN_VALIDATION_IMAGES:
        raise CalibrationError(f"{root}/{validation_split}: {len(val_ds)} image(s), fewer than the "
                               f"{MIN_VALIDATION_IMAGES} needed to check PQ")
    # Spread the subset over the split (the first N images may all come from one source).
    picks = np.linspace(0, len(calib_ds) - 1, min(subset, len(calib_ds))).round().astype(int)
    calibration = []
    for i in dict.fromkeys(picks.tolist()):
        sample = calib_ds.load_raw(i)
        _check_image(sample, calibration_split, size)
        calibration.append(preprocess(sample.image, size, mean, std)[0])
    validation = []
    for i in range(min(validation_images, len(val_ds))):
        sample = val_ds.load_raw(i)
        _check_image(sample, validation_split, size)
        validation.append(sample)
    categories = [{"id": c.id, "name": c.name, "isthing": int(c.isthing)} for c in val_ds.categories]
    return QuantData(calibration, validation, categories, root)
