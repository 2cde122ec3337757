"""Deterministic training stream: the batch of global step s depends only on (seed, s).

Position ``p`` of the infinite stream is image ``perm_epoch[p % n]`` with
``epoch = p // n`` and an augmentation RNG seeded by ``(seed, p)``. Resuming at step s is
therefore exact without saving loader state, and DDP ranks take disjoint slices of each batch.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from edgeseg.data.coco_panoptic import CocoPanoptic
from edgeseg.data.transforms import TrainAugment
from edgeseg.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD


class TrainStream(Dataset):
    """Map-style view: ``stream[p]`` -> (image tensor [3,S,S], target dict)."""

    def __init__(self, dataset: CocoPanoptic, image_size: int, scale_range: tuple[float, float], seed: int,
                 mean: tuple[float, float, float] = IMAGENET_MEAN, std: tuple[float, float, float] = IMAGENET_STD) -> None:
        """``mean`` / ``std``: the model's normalisation (0-255 scale); padding is the mean colour,
        0 after normalisation, as in inference's letterbox."""
        self.dataset = dataset
        self.seed = seed
        pad = tuple(int(round(v)) for v in mean)
        self.augment = TrainAugment(out_size=image_size, scale_range=scale_range, hflip=True, pad_value=pad)
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)

    def __len__(self) -> int:  # the stream is infinite; samplers index it directly
        return 2**62

    @lru_cache(maxsize=4)
    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))

    def __getitem__(self, position: int):
        n = len(self.dataset)
        index = int(self._perm(position // n)[position % n])
        rng = np.random.default_rng([self.seed, 1, position])
        raw = self.dataset.load_raw(index)
        image, panoptic = self.augment(raw.image, raw.panoptic, rng)
        raw.image, raw.panoptic = image, panoptic
        masks, labels, _ = self.dataset.targets(raw)
        semantic = self.dataset.semantic_target(raw)
        x = (image.astype(np.float32) - self.mean) / self.std
        target = {
            "masks": torch.from_numpy(np.ascontiguousarray(masks)),
            "labels": torch.from_numpy(np.asarray(labels, dtype=np.int64)),
            "semantic": torch.from_numpy(semantic.astype(np.int64)),
        }
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))), target


class StepSampler(Sampler[int]):
    """Global stream positions for steps ``[start, end)`` of this rank's share of each batch."""

    def __init__(self, start_step: int, end_step: int, global_batch: int, rank: int = 0, world: int = 1) -> None:
        self.start, self.end, self.global_batch = start_step, end_step, global_batch
        self.rank, self.world = rank, world
        self.local = global_batch // world

    def __iter__(self):
        for step in range(self.start, self.end):
            base = step * self.global_batch + self.rank * self.local
            yield from range(base, base + self.local)

    def __len__(self) -> int:
        return (self.end - self.start) * self.local


def collate(batch):
    images = torch.stack([b[0] for b in batch])
    return images, [b[1] for b in batch]
