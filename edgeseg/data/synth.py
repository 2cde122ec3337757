"""Built-in procedurally generated panoptic data set, written in COCO-panoptic format.

Why: tests, demos and CI need a panoptic data set that is small, free, bit-identical per seed
and still hard enough to be meaningful. The difficulty defined here (8 thing shapes with
random colour/texture, log-uniform sizes down to ~6 px radius, occlusion, touching
same-class instances, 5 textured stuff classes, VOID borders/blobs, crowd clusters) is a
fixed benchmark: do not make it easier, or results stop being comparable.

Layout (like real COCO, split names without ``2017``)::

    out_dir/{train,val}/000000.png
    out_dir/annotations/panoptic_{train,val}.json
    out_dir/annotations/panoptic_{train,val}/000000.png   (ids = R + 256 G + 256^2 B; 0 = VOID)
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Union

import cv2
import numpy as np

from edgeseg.data.coco_panoptic import segment_area_bbox
from edgeseg.data.image_io import atomic_write_bytes, id2rgb, write_png
from edgeseg.errors import ConfigError, DatasetError

GENERATOR_VERSION = 1

THING_NAMES = ("circle", "square", "triangle", "star", "cross", "ring", "hexagon", "crescent")
STUFF_NAMES = ("sky", "grass", "water", "wall-brick", "sand")
_CAT_COLORS = (
    (220, 20, 60), (119, 11, 32), (0, 0, 142), (250, 170, 30), (106, 0, 228),
    (0, 80, 100), (255, 77, 255), (0, 226, 252), (70, 130, 180), (107, 142, 35),
    (0, 120, 200), (150, 100, 100), (210, 190, 140),
)
_SPLIT_CODES = {"train": 0, "val": 1}


@dataclass(frozen=True)
class SynthConfig:
    """Size and difficulty knobs of the synthetic set (defaults = the fixed benchmark)."""

    image_size: int = 256
    num_train: int = 2000
    num_val: int = 200
    min_things: int = 3
    max_things: int = 12
    min_radius: float = 6.0  # px, tiny objects
    max_radius: float = 70.0  # px at 256; clipped to 0.3 * image_size
    max_stuff_regions: int = 4
    touching_prob: float = 0.2  # per instance: same class placed adjacent to an earlier one
    crowd_prob: float = 0.1  # per image: one crowd cluster
    void_border_prob: float = 0.3  # per instance: thin VOID band around it
    void_blob_prob: float = 0.3  # per image: unlabeled clutter blobs
    min_visible_frac: float = 0.2  # occluded below this fraction -> placement rejected
    min_pixels: int = 16  # no segment smaller than this survives

    def __post_init__(self) -> None:
        if self.image_size < 32:
            raise ConfigError(f"SynthConfig.image_size must be >= 32, got {self.image_size}")
        if self.num_train < 0 or self.num_val < 0:
            raise ConfigError(f"SynthConfig: num_train/num_val must be >= 0, got {self.num_train}/{self.num_val}")
        if not 1 <= self.min_things <= self.max_things:
            raise ConfigError(f"SynthConfig: need 1 <= min_things <= max_things, got {self.min_things}/{self.max_things}")
        if not 0 < self.min_radius <= self.max_radius:
            raise ConfigError(f"SynthConfig: need 0 < min_radius <= max_radius, got {self.min_radius}/{self.max_radius}")
        if not 1 <= self.max_stuff_regions <= len(STUFF_NAMES):
            raise ConfigError(f"SynthConfig.max_stuff_regions must be in 1..{len(STUFF_NAMES)}")


def synth_categories() -> list[dict[str, Any]]:
    """COCO-style category list: things 1..8, stuff 9..13."""
    cats = []
    for i, name in enumerate(THING_NAMES + STUFF_NAMES):
        isthing = i < len(THING_NAMES)
        cats.append({
            "id": i + 1, "name": name, "isthing": int(isthing),
            "supercategory": "shape" if isthing else "background", "color": list(_CAT_COLORS[i]),
        })
    return cats


# ----------------------------------------------------------------------------- shapes
def _ngon(n: int, r: float, rot: float) -> np.ndarray:
    a = rot + np.arange(n) * (2 * np.pi / n)
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


def _shape_polys(cat: int, r: float, rot: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Polygons (centred at 0) to fill, and polygons to cut out, for thing class ``cat`` (1-based)."""
    name = THING_NAMES[cat - 1]
    ncirc = int(np.clip(r * 1.5, 16, 64))
    if name == "circle":
        return [_ngon(ncirc, r, rot)], []
    if name == "square":
        return [_ngon(4, r, rot)], []
    if name == "triangle":
        return [_ngon(3, r, rot)], []
    if name == "hexagon":
        return [_ngon(6, r, rot)], []
    if name == "star":
        a = rot + np.arange(10) * (np.pi / 5)
        rad = np.where(np.arange(10) % 2 == 0, r, 0.42 * r)
        return [np.stack([rad * np.cos(a), rad * np.sin(a)], axis=1)], []
    if name == "cross":
        w = 0.32 * r
        pts = np.array([[w, w], [r, w], [r, -w], [w, -w], [w, -r], [-w, -r], [-w, -w], [-r, -w],
                        [-r, w], [-w, w], [-w, r], [w, r]])
        c, s = math.cos(rot), math.sin(rot)
        return [pts @ np.array([[c, s], [-s, c]])], []
    if name == "ring":
        return [_ngon(ncirc, r, rot)], [_ngon(ncirc, 0.58 * r, rot)]
    # crescent: disc minus a shifted disc
    off = 0.5 * r * np.array([math.cos(rot), math.sin(rot)])
    return [_ngon(ncirc, r, rot)], [_ngon(ncirc, 0.82 * r, rot) + off]


def _render(polys: list[np.ndarray], holes: list[np.ndarray], cx: float, cy: float,
            x0: int, y0: int, shape: tuple[int, int]) -> np.ndarray:
    """Anti-aliased coverage (uint8 0..255) of a shape in the patch with origin (x0, y0)."""
    patch = np.zeros(shape, np.uint8)
    off = np.array([cx - x0, cy - y0])
    for pts, val in [(p, 255) for p in polys] + [(h, 0) for h in holes]:
        ip = np.round((pts + off) * 16).astype(np.int32)
        cv2.fillPoly(patch, [ip], val, lineType=cv2.LINE_AA, shift=4)
    return patch


def _thing_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Random colour + random texture (solid, stripes, checker/dots, noise) as HxWx3 float32."""
    c1 = rng.uniform(0, 255, 3).astype(np.float32)
    c2 = rng.uniform(0, 255, 3).astype(np.float32)
    kind = int(rng.integers(0, 4))
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    if kind == 0:  # solid with a mild lighting gradient
        g = rng.uniform(-0.15, 0.15) * (yy / max(h, 1) - 0.5)
        tex = c1[None, None, :] * (1 + g[..., None])
    elif kind == 1:  # stripes at a random angle
        th = rng.uniform(0, np.pi)
        period = rng.uniform(3, 10)
        t = (0.5 + 0.5 * np.sin(2 * np.pi * (xx * math.cos(th) + yy * math.sin(th)) / period))[..., None]
        tex = c1 * t + c2 * (1 - t)
    elif kind == 2:  # checker or dots
        cell = float(rng.uniform(2, 7))
        if rng.random() < 0.5:
            m = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2)[..., None]
        else:
            dx = (xx % (2 * cell)) - cell
            dy = (yy % (2 * cell)) - cell
            m = ((dx * dx + dy * dy) < (0.55 * cell) ** 2)[..., None].astype(np.float32)
        tex = c1 * m + c2 * (1 - m)
    else:  # noise
        sigma = rng.uniform(15, 45)
        tex = c1[None, None, :] + _gauss(rng, sigma, (h, w, 1))
    return tex.astype(np.float32)


# ----------------------------------------------------------------------------- stuff
def _smooth_noise(rng: np.random.Generator, h: int, w: int, grid: int) -> np.ndarray:
    low = rng.random((grid, grid)).astype(np.float32)
    return cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)


def _gauss(rng: np.random.Generator, sigma: float, shape: tuple) -> np.ndarray:
    """float32 Gaussian noise (float32 sampling is ~2x faster than float64)."""
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)


def _stuff_texture(name: str, rng: np.random.Generator, h: int, w: int, y0: int = 0, x0: int = 0,
                   full_h: int | None = None) -> np.ndarray:
    """Class-specific texture (colour from a class-dependent family) for the window at (y0, x0)."""
    yy = np.arange(y0, y0 + h, dtype=np.float32)[:, None]
    xx = np.arange(x0, x0 + w, dtype=np.float32)[None, :]
    full_h = full_h or h
    if name == "sky":
        top = np.array([rng.uniform(40, 120), rng.uniform(100, 170), rng.uniform(180, 250)], np.float32)
        bottom = np.minimum(top + rng.uniform(40, 90), 255)
        t = (yy / full_h)[..., None]
        tex = top * (1 - t) + bottom * t
        clouds = np.clip(_smooth_noise(rng, h, w, 5) - 0.55, 0, 1)[..., None] * rng.uniform(100, 300)
        tex = tex + clouds + _gauss(rng, 3, (h, w, 1))
    elif name == "grass":
        base = np.array([rng.uniform(30, 100), rng.uniform(100, 180), rng.uniform(15, 70)], np.float32)
        streak = cv2.blur(_gauss(rng, 1, (h, w)), (1, 7))[..., None]
        tex = base + streak * 45 + _gauss(rng, 18, (h, w, 1))
    elif name == "water":
        base = np.array([rng.uniform(0, 60), rng.uniform(80, 150), rng.uniform(120, 210)], np.float32)
        p, q, a = rng.uniform(5, 12), rng.uniform(20, 60), rng.uniform(1, 3)
        wave = np.sin(2 * np.pi * yy / p + a * np.sin(2 * np.pi * xx / q))[..., None]
        tex = base + wave * rng.uniform(12, 30) + _gauss(rng, 4, (h, w, 1))
    elif name == "wall-brick":
        brick = np.array([rng.uniform(120, 190), rng.uniform(45, 90), rng.uniform(25, 70)], np.float32)
        mortar = np.full(3, rng.uniform(170, 220), np.float32)
        bh = rng.uniform(6, 12)
        bw = bh * rng.uniform(2, 3)
        row = np.floor(yy / bh)
        xs = xx + (row % 2) * bw / 2
        m = (((yy % bh) < 1.5) | ((xs % bw) < 1.5))[..., None]
        shade = _gauss(rng, 12, (int((y0 + h) / bh) + 2, int((x0 + w) / bw) + 3))
        tint = shade[row.astype(int), np.floor(xs / bw).astype(int)][..., None]
        tex = np.where(m, mortar, brick + tint) + _gauss(rng, 5, (h, w, 1))
    else:  # sand
        base = np.array([rng.uniform(190, 235), rng.uniform(160, 210), rng.uniform(100, 150)], np.float32)
        ripple = np.sin(2 * np.pi * (xx * 0.3 + yy) / rng.uniform(8, 16))[..., None]
        tex = base + ripple * 8 + _gauss(rng, 12, (h, w, 1))
    return tex.astype(np.float32)


def _stuff_layout(rng: np.random.Generator, size: int, cfg: SynthConfig) -> tuple[np.ndarray, list[int]]:
    """Region map (HxW int, -1 never) and the stuff category id of each region."""
    n = int(rng.integers(1, cfg.max_stuff_regions + 1))
    names = list(STUFF_NAMES)
    chosen = sorted(rng.choice(len(names), size=n, replace=False).tolist())
    yy = np.linspace(0, 1, size, dtype=np.float32)[:, None]
    fields = []
    for idx in chosen:
        f = _smooth_noise(rng, size, size, int(rng.integers(2, 5)))
        f += 0.15 * _smooth_noise(rng, size, size, 16)
        if names[idx] == "sky":
            f += 0.6 * (1 - yy)
        elif names[idx] in ("grass", "sand", "water"):
            f += 0.3 * yy
        fields.append(f)
    stack = np.stack(fields)
    alive = list(range(n))
    while True:
        region = np.argmax(stack[alive], axis=0)
        counts = np.bincount(region.ravel(), minlength=len(alive))
        small = [k for k in range(len(alive)) if counts[k] < 0.02 * size * size]
        if not small or len(alive) == 1:
            break
        alive.pop(int(small[np.argmin(counts[small])]))
    return region, [len(THING_NAMES) + 1 + chosen[a] for a in alive]


# ----------------------------------------------------------------------------- one image
def _make_image(rng: np.random.Generator, cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Generate one (RGB image, int32 panoptic ids, segments_info)."""
    S = cfg.image_size
    region, stuff_cats = _stuff_layout(rng, S, cfg)
    img = np.zeros((S, S, 3), np.float32)
    wsum = np.zeros((S, S, 1), np.float32)
    for k, cat in enumerate(stuff_cats):
        wk = cv2.GaussianBlur((region == k).astype(np.float32), (5, 5), 0.8)
        rows = np.flatnonzero(wk.any(axis=1))
        cols = np.flatnonzero(wk.any(axis=0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1  # texture only where needed
        w3 = wk[y0:y1, x0:x1, None]
        tex = _stuff_texture(STUFF_NAMES[cat - len(THING_NAMES) - 1], rng, y1 - y0, x1 - x0, y0, x0, S)
        img[y0:y1, x0:x1] += w3 * tex
        wsum[y0:y1, x0:x1] += w3
    img /= np.maximum(wsum, 1e-6)

    void = np.zeros((S, S), bool)
    if rng.random() < cfg.void_blob_prob:  # unlabeled clutter blobs
        for _ in range(int(rng.integers(1, 3))):
            cx, cy = rng.uniform(0, S, 2)
            ax = rng.uniform(4, 18, 2) * S / 256
            cov = np.zeros((S, S), np.uint8)
            cv2.ellipse(cov, ((float(cx), float(cy)), (float(2 * ax[0]), float(2 * ax[1])),
                              float(rng.uniform(0, 180))), 255, -1, cv2.LINE_AA)
            a = (cov.astype(np.float32) / 255)[..., None]
            clutter = rng.uniform(0, 255, 3).astype(np.float32) + _gauss(rng, 40, (S, S, 3))
            img = img * (1 - a) + clutter * a
            void |= cov >= 128

    # things, in random z-order; a placement that would hide an earlier one too much is resampled
    max_r = min(cfg.max_radius, 0.3 * S)
    min_r = min(cfg.min_radius, max_r)
    label = np.zeros((S, S), np.int16)  # 0 = background, k + 1 = item k
    items: list[dict] = []
    n_things = int(rng.integers(cfg.min_things, cfg.max_things + 1))
    crowd_at = int(rng.integers(0, n_things)) if rng.random() < cfg.crowd_prob else -1
    for step in range(n_things):
        crowd = step == crowd_at
        for _attempt in range(30 if crowd else 8):
            cat = int(rng.integers(1, len(THING_NAMES) + 1))
            singles = [it for it in items if not it["crowd"]]
            if crowd:
                cx, cy = rng.uniform(0, S, 2)
                spread = rng.uniform(10, 24)
                parts = []
                for _ in range(int(rng.integers(5, 12))):
                    ox, oy = rng.normal(0, spread / 2, 2)
                    parts.append((float(cx + ox), float(cy + oy), float(rng.uniform(3, 5.5)), float(rng.uniform(0, 2 * np.pi))))
            else:
                r = float(np.exp(rng.uniform(np.log(min_r), np.log(max_r))))
                if singles and rng.random() < cfg.touching_prob:  # same class, adjacent
                    nb = singles[int(rng.integers(0, len(singles)))]
                    cat = nb["cat"]
                    r = float(np.clip(nb["r"] * rng.uniform(0.6, 1.4), min_r, max_r))
                    ang = rng.uniform(0, 2 * np.pi)
                    d = (nb["r"] + r) * rng.uniform(0.75, 1.0)
                    cx, cy = nb["cx"] + d * math.cos(ang), nb["cy"] + d * math.sin(ang)
                else:
                    cx, cy = rng.uniform(0, S, 2)
                parts = [(float(cx), float(cy), r, float(rng.uniform(0, 2 * np.pi)))]
            ext = max(abs(p[0] - cx) + p[2] for p in parts), max(abs(p[1] - cy) + p[2] for p in parts)
            x0, y0 = max(int(cx - ext[0]) - 2, 0), max(int(cy - ext[1]) - 2, 0)
            x1, y1 = min(int(cx + ext[0]) + 3, S), min(int(cy + ext[1]) + 3, S)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            covs = [_render(*_shape_polys(cat, pr, prot), px, py, x0, y0, (y1 - y0, x1 - x0))
                    for px, py, pr, prot in parts]
            hard = np.zeros((y1 - y0, x1 - x0), bool)
            for c in covs:
                hard |= c >= 128
            full = int(hard.sum())
            if full < cfg.min_pixels:
                continue
            hidden = np.bincount(label[y0:y1, x0:x1][hard], minlength=len(items) + 1)
            if any(it["vis"] - hidden[k + 1] < max(cfg.min_visible_frac * it["full"], cfg.min_pixels)
                   for k, it in enumerate(items) if hidden[k + 1]):
                continue
            for k, it in enumerate(items):
                it["vis"] -= int(hidden[k + 1])
            for c in covs:
                a = (c.astype(np.float32) / 255)[..., None]
                tex = _thing_texture(rng, y1 - y0, x1 - x0)
                img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - a) + tex * a
            label[y0:y1, x0:x1][hard] = len(items) + 1
            items.append({"cat": cat, "crowd": crowd, "full": full, "vis": full, "r": parts[0][2],
                          "cx": float(cx), "cy": float(cy), "box": (x0, y0, x1, y1)})
            break

    # panoptic ids: stuff = cat*1000+1, things = cat*1000+k
    pan = np.zeros((S, S), np.int32)
    for k, cat in enumerate(stuff_cats):
        pan[region == k] = cat * 1000 + 1
    pan[void] = 0
    per_cat: dict[int, int] = {}
    meta: dict[int, dict] = {}
    for k, it in enumerate(items):
        per_cat[it["cat"]] = per_cat.get(it["cat"], 0) + 1
        sid = it["cat"] * 1000 + per_cat[it["cat"]]
        pan[label == k + 1] = sid
        meta[sid] = it
    for k, it in enumerate(items):  # thin VOID band around some instances (own + background pixels only)
        if it["crowd"] or it["vis"] < 100 or rng.random() >= cfg.void_border_prob:
            continue
        x0, y0, x1, y1 = it["box"]
        x0, y0, x1, y1 = max(x0 - 1, 0), max(y0 - 1, 0), min(x1 + 1, S), min(y1 + 1, S)
        lab = label[y0:y1, x0:x1]
        vis = (lab == k + 1).astype(np.uint8)
        ker = np.ones((3, 3), np.uint8)
        band = (cv2.dilate(vis, ker) > 0) & ~(cv2.erode(vis, ker, borderValue=1) > 0) & ((lab == 0) | (lab == k + 1))
        pan[y0:y1, x0:x1][band] = 0

    # global photometric noise
    img += _gauss(rng, rng.uniform(0, 4), (S, S, 1))
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)

    ids, counts = np.unique(pan, return_counts=True)
    for sid, cnt in zip(ids.tolist(), counts.tolist()):
        if sid and cnt < cfg.min_pixels:  # no microscopic segments
            pan[pan == sid] = 0
    stats = segment_area_bbox(pan)
    segments = []
    for sid in sorted(stats):
        cat = sid // 1000
        seg = {"id": int(sid), "category_id": int(cat), "area": stats[sid][0], "bbox": stats[sid][1]}
        it = meta.get(sid)
        seg["iscrowd"] = int(bool(it and it["crowd"]))
        if it is not None and not it["crowd"]:
            seg["occluded"] = bool(it["vis"] < 0.9 * it["full"])
        segments.append(seg)
    return image, pan, segments


def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Per-image stream derived from (seed, split, index): independent of order and workers."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _SPLIT_CODES[split], int(index)]))


def _write_one(args: tuple[str, int, str, int, SynthConfig]) -> tuple[dict, dict]:
    tmp, seed, split, index, cfg = args
    image, pan, segments = _make_image(_image_rng(seed, split, index), cfg)
    name = f"{index:06d}.png"
    write_png(Path(tmp, split, name), image)
    write_png(Path(tmp, "annotations", f"panoptic_{split}", name), id2rgb(pan))
    info = {"id": index, "file_name": name, "height": cfg.image_size, "width": cfg.image_size}
    ann = {"image_id": index, "file_name": name, "segments_info": segments}
    return info, ann


def generate_synthetic(out_dir: Union[str, os.PathLike], seed: int = 0, config: SynthConfig | None = None,
                       *, overwrite: bool = False, workers: int = 1) -> Path:
    """Generate the synthetic COCO-panoptic set into ``out_dir`` atomically; returns its path.

    Output is bit-identical for a given (seed, config), whatever ``workers`` is. An existing
    non-empty ``out_dir`` is refused unless ``overwrite=True``.
    """
    cfg = config or SynthConfig()
    out = Path(out_dir).absolute()
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DatasetError(f"{out}: directory exists and is not empty (pass overwrite=True to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        cats = synth_categories()
        for split, count in (("train", cfg.num_train), ("val", cfg.num_val)):
            (tmp / split).mkdir()
            (tmp / "annotations" / f"panoptic_{split}").mkdir(parents=True)
            jobs = [(str(tmp), seed, split, i, cfg) for i in range(count)]
            if workers > 1 and count > 1:
                import multiprocessing as mp

                # forkserver: a plain fork of a process that has imported a multithreaded library
                # (JAX, via litert-torch in the export extra) can deadlock
                with mp.get_context("spawn" if os.name == "nt" else "forkserver").Pool(workers) as pool:
                    results = pool.map(_write_one, jobs, chunksize=16)
            else:
                results = [_write_one(j) for j in jobs]
            doc = {
                "info": {"description": "edgeseg synthetic panoptic shapes", "version": str(GENERATOR_VERSION),
                         "seed": int(seed), "split": split, "config": asdict(cfg)},
                "licenses": [],
                "images": [r[0] for r in results],
                "annotations": [r[1] for r in results],
                "categories": cats,
            }
            data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
            atomic_write_bytes(tmp / "annotations" / f"panoptic_{split}.json", data)
        if out.exists():
            trash = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            os.replace(out, trash / "old")
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
