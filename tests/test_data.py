"""Tests for edgeseg.data: image I/O, synthetic generator, COCO-panoptic reader, transforms, stats."""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeseg.data.coco_panoptic import CocoPanoptic, segment_area_bbox
from edgeseg.data.image_io import (ImageConversionWarning, as_rgb_uint8, id2rgb, read_id_png, read_image, rgb2id,
                                   write_png)
from edgeseg.data.stats import dataset_stats, format_stats
from edgeseg.data.synth import SynthConfig, generate_synthetic
from edgeseg.data.transforms import EvalResize, TrainAugment
from edgeseg.errors import DatasetError, ImageError

SMALL = SynthConfig(image_size=96, num_train=6, num_val=3)


def _tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("s") / "synth", seed=3, config=SMALL)


@pytest.fixture(scope="module")
def synth_medium(tmp_path_factory) -> Path:
    cfg = SynthConfig(image_size=96, num_train=0, num_val=60)
    return generate_synthetic(tmp_path_factory.mktemp("m") / "synth", seed=0, config=cfg)


# ----------------------------------------------------------------------------- synthetic generator
def test_synth_bit_identical_per_seed(synth, tmp_path):
    again = generate_synthetic(tmp_path / "again", seed=3, config=SMALL)
    other = generate_synthetic(tmp_path / "other", seed=4, config=SMALL)
    h1, h2, h3 = _tree_hash(synth), _tree_hash(again), _tree_hash(other)
    assert len(h1) == 2 * (6 + 3) + 2
    assert h1 == h2
    assert h1.keys() == h3.keys()
    assert sum(h1[k] != h3[k] for k in h1) >= 2 * (6 + 3)


def test_synth_workers_do_not_change_output(synth, tmp_path):
    par = generate_synthetic(tmp_path / "par", seed=3, config=SMALL, workers=2)
    assert _tree_hash(par) == _tree_hash(synth)


def test_synth_layout_and_json_png_consistency(synth):
    for split, n in (("train", 6), ("val", 3)):
        doc = json.loads((synth / "annotations" / f"panoptic_{split}.json").read_text())
        assert {"info", "licenses", "images", "annotations", "categories"} <= doc.keys()
        assert len(doc["images"]) == len(doc["annotations"]) == n
        cat_ids = {c["id"] for c in doc["categories"]}
        for im, ann in zip(doc["images"], doc["annotations"]):
            assert im["id"] == ann["image_id"]
            image = read_image(synth / split / im["file_name"])
            assert image.shape == (96, 96, 3) == (im["height"], im["width"], 3)
            pan = read_id_png(synth / "annotations" / f"panoptic_{split}" / ann["file_name"])
            stats = segment_area_bbox(pan)
            segs = {s["id"]: s for s in ann["segments_info"]}
            assert set(stats) == set(segs) and len(segs) >= 2
            for sid, s in segs.items():
                assert s["category_id"] in cat_ids
                assert (s["area"], s["bbox"]) == stats[sid]
                assert s["area"] >= 16
            stuff_cats = [s["category_id"] for s in segs.values() if s["category_id"] > 8]
            assert len(stuff_cats) == len(set(stuff_cats))  # one segment per stuff class


def test_synth_categories(synth):
    cats = json.loads((synth / "annotations" / "panoptic_val.json").read_text())["categories"]
    things = [c for c in cats if c["isthing"] == 1]
    stuff = [c for c in cats if c["isthing"] == 0]
    assert len(things) >= 8 and len(stuff) >= 4
    assert all(len(c["color"]) == 3 and c["name"] and "supercategory" in c for c in cats)
    assert len({c["name"] for c in cats}) == len(cats)


def test_synth_void_crowd_and_difficulty(synth_medium):
    st = dataset_stats(synth_medium, "val")
    assert st["crowd_segments"] >= 1
    assert 0.002 < st["void_pixel_share"] < 0.10
    assert st["things"] == 8 and st["stuff"] >= 4
    assert 3 <= st["instances_per_image"]["mean"] <= 14
    assert st["small_share_32"] > 0.2  # many small objects
    assert st["touching_pairs_per_image"] > 0
    assert st["occluded_share"] is not None and 0 < st["occluded_share"] < 1
    text = format_stats(st)
    assert "crowd segments" in text and "VOID" in text


def test_synth_refuses_nonempty_dir_and_overwrites_atomically(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(DatasetError, match="not empty"):
        generate_synthetic(out, config=SynthConfig(image_size=64, num_train=1, num_val=1))
    assert (out / "keep.txt").exists()
    generate_synthetic(out, config=SynthConfig(image_size=64, num_train=1, num_val=1), overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "annotations" / "panoptic_val.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temp dirs left behind


# ----------------------------------------------------------------------------- reader on synthetic data
def test_reader_loads_synthetic(synth):
    ds = CocoPanoptic(synth, "train")
    assert len(ds) == 6 and len(ds.categories) == 13
    assert ds.category_ids == sorted(ds.category_ids)
    assert sum(ds.isthing) == 8 and ds.class_names[0] == "circle"
    s = ds[1]
    assert s.image.shape == (96, 96, 3) and s.image.dtype == np.uint8
    assert s.panoptic.shape == (96, 96) and s.panoptic.dtype == np.int32
    masks, labels, ignore = ds.targets(s)
    assert masks.dtype == bool and masks.shape[1:] == (96, 96) and masks.shape[0] == labels.shape[0]
    assert labels.dtype == np.int64 and labels.min() >= 0 and labels.max() < 13
    assert ignore.shape == (96, 96) and ignore.dtype == bool
    assert not (masks.any(axis=0) & ignore).any()
    assert np.array_equal(ignore, s.panoptic == 0) or ignore.sum() > (s.panoptic == 0).sum()
    sem = ds.semantic_target(s)
    assert sem.shape == (96, 96) and np.array_equal(sem == 255, s.panoptic == 0)


# ----------------------------------------------------------------------------- foreign COCO dir
def _foreign(root: Path, mutate=None) -> Path:
    """A tiny hand-written COCO-2017-style dir: jpg images, non-contiguous category ids."""
    (root / "val2017").mkdir(parents=True)
    png_dir = root / "annotations" / "panoptic_val2017"
    png_dir.mkdir(parents=True)
    pan = np.zeros((30, 40), np.int32)
    pan[:, :20] = 300  # stuff, cat 200
    pan[5:15, 22:35] = 11  # thing, cat 1
    pan[18:28, 22:30] = 4242  # thing, cat 7
    pan[18:28, 31:38] = 77  # crowd, cat 1
    pan[0:3, 0:40] = 0  # VOID
    img = np.full((30, 40, 3), 128, np.uint8)
    cv2.imwrite(str(root / "val2017" / "000000000139.jpg"), img)
    write_png(png_dir / "000000000139.png", id2rgb(pan))
    segs = [{"id": sid, "category_id": c, "iscrowd": int(sid == 77), "area": 1, "bbox": [0, 0, 1, 1]}
            for sid, c in ((300, 200), (11, 1), (4242, 7), (77, 1))]
    doc = {
        "info": {}, "licenses": [],
        "images": [{"id": 139, "file_name": "000000000139.jpg", "height": 30, "width": 40}],
        "annotations": [{"image_id": 139, "file_name": "000000000139.png", "segments_info": segs}],
        "categories": [{"id": 200, "name": "wall", "isthing": 0, "supercategory": "x", "color": [1, 2, 3]},
                       {"id": 1, "name": "person", "isthing": 1, "supercategory": "x", "color": [4, 5, 6]},
                       {"id": 7, "name": "train", "isthing": 1, "supercategory": "x", "color": [7, 8, 9]}],
    }
    if mutate:
        mutate(root, doc)
    (root / "annotations" / "panoptic_val2017.json").write_text(json.dumps(doc))
    return root


def test_foreign_coco_2017_naming_loads(tmp_path):
    ds = CocoPanoptic(_foreign(tmp_path), split="val")
    assert ds.category_ids == [1, 7, 200] and ds.cat_id_to_index == {1: 0, 7: 1, 200: 2}
    assert ds.isthing == [True, True, False] and ds.categories[0].color == (4, 5, 6)
    s = ds[0]
    assert s.image_id == 139 and s.file_name == "000000000139.jpg" and s.image.shape == (30, 40, 3)
    masks, labels, ignore = ds.targets(s)
    assert sorted(labels.tolist()) == [0, 1, 2]  # crowd excluded
    assert ignore[20, 33] and ignore[1, 1] and not ignore[10, 25]
    sem = ds.semantic_target(s)
    assert sem[20, 33] == 0 and sem[1, 1] == 255 and sem[20, 5] == 2 and sem[20, 25] == 1
    st = dataset_stats(tmp_path, "val")
    assert st["occluded_share"] is None and st["crowd_segments"] == 1 and st["instances"] == 2
    assert "n/a" in format_stats(st)


def _mut_missing_image(root, doc):
    os.remove(root / "val2017" / "000000000139.jpg")


def _mut_absent_segment(root, doc):
    doc["annotations"][0]["segments_info"].append({"id": 999, "category_id": 1, "iscrowd": 0})


def _mut_extra_png_id(root, doc):
    doc["annotations"][0]["segments_info"] = doc["annotations"][0]["segments_info"][1:]


def _mut_unknown_category(root, doc):
    doc["annotations"][0]["segments_info"][0]["category_id"] = 55


def _mut_escape(root, doc):
    doc["images"][0]["file_name"] = "../x.png"


def _mut_absolute(root, doc):
    doc["annotations"][0]["file_name"] = str(root / "annotations" / "panoptic_val2017" / "000000000139.png")


def _mut_size(root, doc):
    write_png(root / "annotations" / "panoptic_val2017" / "000000000139.png", np.zeros((10, 10, 3), np.uint8))
    doc["annotations"][0]["segments_info"] = []


@pytest.mark.parametrize("mutate,at_load,needle,fname", [
    (_mut_missing_image, False, "not found", "000000000139.jpg"),
    (_mut_unknown_category, False, "unknown category_id 55", "panoptic_val2017.json"),
    (_mut_escape, False, "escapes", "panoptic_val2017.json"),
    (_mut_absolute, False, "absolute", "panoptic_val2017.json"),
    (_mut_absent_segment, True, "absent from the PNG", "000000000139.png"),
    (_mut_extra_png_id, True, "not listed in segments_info", "000000000139.png"),
    (_mut_size, True, "!= image size", "000000000139.png"),
])
def test_dataset_errors_name_the_file(tmp_path, mutate, at_load, needle, fname):
    root = _foreign(tmp_path, mutate)
    if at_load:
        ds = CocoPanoptic(root, "val")
        with pytest.raises(DatasetError) as ei:
            ds[0]
    else:
        with pytest.raises(DatasetError) as ei:
            CocoPanoptic(root, "val")
    assert needle in str(ei.value) and fname in str(ei.value)


def test_malformed_and_missing_json(tmp_path):
    root = _foreign(tmp_path)
    jp = root / "annotations" / "panoptic_val2017.json"
    jp.write_text('{"images": [')
    with pytest.raises(DatasetError, match="malformed JSON") as ei:
        CocoPanoptic(root, "val")
    assert "panoptic_val2017.json" in str(ei.value)
    jp.write_text('{"images": []}')
    with pytest.raises(DatasetError, match="annotations"):
        CocoPanoptic(root, "val")
    with pytest.raises(DatasetError, match="panoptic_train.json"):
        CocoPanoptic(root, "train")


# ----------------------------------------------------------------------------- image I/O
def test_read_image_errors(tmp_path):
    with pytest.raises(ImageError, match="not found") as ei:
        read_image(tmp_path / "nope.png")
    assert "nope.png" in str(ei.value)
    good = tmp_path / "good.png"
    write_png(good, np.random.default_rng(0).integers(0, 255, (20, 20, 3), dtype=np.uint8))
    data = good.read_bytes()
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated") as ei:
        read_image(trunc)
    assert "trunc.png" in str(ei.value)
    ok, jpg = cv2.imencode(".jpg", np.zeros((20, 20, 3), np.uint8))
    tj = tmp_path / "trunc.jpg"
    tj.write_bytes(jpg.tobytes()[:-40])
    with pytest.raises(ImageError, match="truncated"):
        read_image(tj)
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(ImageError, match="garbage.jpg"):
        read_image(garbage)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        read_image(empty)


def test_read_image_conversions_warn(tmp_path):
    gray = np.arange(100, dtype=np.uint8).reshape(10, 10)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    with pytest.warns(ImageConversionWarning, match="g.png"):
        out = read_image(tmp_path / "g.png")
    assert out.shape == (10, 10, 3) and out.dtype == np.uint8 and np.array_equal(out[..., 1], gray)
    bgra = np.zeros((10, 10, 4), np.uint8)
    bgra[..., 2] = 200  # red in BGR(A)
    bgra[..., 3] = 17
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    with pytest.warns(ImageConversionWarning, match="alpha"):
        out = read_image(tmp_path / "a.png")
    assert out.shape == (10, 10, 3) and (out[..., 0] == 200).all() and (out[..., 2] == 0).all()
    deep = np.full((10, 10, 3), 257 * 100, np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    with pytest.warns(ImageConversionWarning, match="16-bit"):
        out = read_image(tmp_path / "d.png")
    assert out.dtype == np.uint8 and (out == 100).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_png(tmp_path / "c.png", np.dstack([np.full((4, 4), v, np.uint8) for v in (10, 20, 30)]))
        assert read_image(tmp_path / "c.png")[0, 0].tolist() == [10, 20, 30]  # RGB order, no warning


def test_as_rgb_uint8_rules():
    with pytest.warns(ImageConversionWarning):
        assert as_rgb_uint8(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    with pytest.warns(ImageConversionWarning):
        assert as_rgb_uint8(np.zeros((5, 6, 4), np.uint8)).shape == (5, 6, 3)
    with pytest.warns(ImageConversionWarning):
        assert as_rgb_uint8(np.full((2, 2, 3), 65535, np.uint16)).max() == 255
    with pytest.raises(ImageError, match="float32"):
        as_rgb_uint8(np.zeros((5, 6, 3), np.float32), "frame")
    with pytest.raises(ImageError, match=r"\(5, 6, 2\)"):
        as_rgb_uint8(np.zeros((5, 6, 2), np.uint8))


def test_rgb_id_roundtrip(tmp_path):
    ids = np.array([[0, 1, 256], [65536, 16777215, 4242]], np.int32)
    assert np.array_equal(rgb2id(id2rgb(ids)), ids)
    write_png(tmp_path / "p.png", id2rgb(ids))
    assert np.array_equal(read_id_png(tmp_path / "p.png"), ids)
    with pytest.raises(ImageError):
        id2rgb(np.array([1 << 24]))


# ----------------------------------------------------------------------------- transforms
def _block_pair(h=60, w=80):
    pan = np.zeros((h, w), np.int32)
    pan[:, : w // 2] = 1
    pan[: h // 2, w // 2:] = 2
    pan[h // 2:, w // 2:] = 3
    pan[20:28, 5:15] = 4
    colours = {0: (0, 0, 0), 1: (250, 0, 0), 2: (0, 250, 0), 3: (0, 0, 250), 4: (250, 250, 0)}
    img = np.zeros((h, w, 3), np.uint8)
    for k, c in colours.items():
        img[pan == k] = c
    return img, pan, colours


def test_train_augment_keeps_alignment_and_is_deterministic():
    img, pan, colours = _block_pair()
    aug = TrainAugment(out_size=64, scale_range=(0.5, 2.0))
    flips = 0
    for seed in range(12):
        a_img, a_pan = aug(img, pan, np.random.default_rng(seed))
        b_img, b_pan = aug(img, pan, np.random.default_rng(seed))
        assert np.array_equal(a_img, b_img) and np.array_equal(a_pan, b_pan)
        assert a_img.shape == (64, 64, 3) and a_pan.shape == (64, 64) and a_pan.dtype == np.int32
        assert set(np.unique(a_pan).tolist()) <= {0, 1, 2, 3, 4}
        # interior pixels (3x3 neighbourhood of one id) carry that id's colour: image/ids aligned
        er = {k: cv2.erode((a_pan == k).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0 for k in (1, 2, 3, 4)}
        for k, m in er.items():
            if m.any():
                assert np.abs(a_img[m].astype(int) - colours[k]).max() <= 2
        flips += int((a_pan[:, :8] == 1).sum() < (a_pan[:, -8:] == 1).sum())
    assert 0 < flips < 12  # both flipped and unflipped outputs occur
    pad = TrainAugment(out_size=64, scale_range=(0.5, 0.5))(img, pan, np.random.default_rng(0))
    assert (pad[1][40:] == 0).all() and (pad[0][40:] == (124, 116, 104)).all()


def test_eval_resize_and_flip_twice():
    img, pan, _ = _block_pair()
    e_img, e_pan = EvalResize(40)(img, pan)
    assert e_img.shape == (40, 40, 3) and e_pan.shape == (40, 40) and (e_pan[30:] == 0).all()
    assert np.array_equal(np.unique(e_pan), [0, 1, 2, 3, 4])
    f = TrainAugment(out_size=80, scale_range=(1.0, 1.0))
    outs = [f(img, pan, np.random.default_rng(s)) for s in range(8)]
    flipped = [o for o in outs if not np.array_equal(o[1][:60], pan)]
    assert flipped and all(np.array_equal(o[1][:60][:, ::-1], pan) for o in flipped)
    assert all(np.array_equal(o[0][:60][:, ::-1], img) for o in flipped)
    with pytest.raises(ImageError, match="does not match"):
        f(img, pan[:10], np.random.default_rng(0))


def test_dataset_transform_deterministic_per_seed_epoch(synth):
    ds = CocoPanoptic(synth, "train", transform=TrainAugment(out_size=64), seed=5)
    a, b = ds[2], ds[2]
    assert np.array_equal(a.image, b.image) and np.array_equal(a.panoptic, b.panoptic)
    present = set(np.unique(a.panoptic).tolist()) - {0}
    assert {s["id"] for s in a.segments} == present
    stats = segment_area_bbox(a.panoptic)
    assert all(s["area"] == stats[s["id"]][0] for s in a.segments)
    ds.set_epoch(1)
    c = ds[2]
    ds.epoch = 0
    assert np.array_equal(ds[2].image, a.image) and not np.array_equal(c.image, a.image)
    masks, labels, ignore = ds.targets(a)
    assert masks.shape[1:] == (64, 64) and len(labels) == masks.shape[0]
