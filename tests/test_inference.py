"""Tests for edgeseg.inference: preprocess, Mask2Former post-processing, Result, visualize.

Hand-built logits: masks are +-10 blocks on an 8x8 grid (stride 4 of S=32), so after the
bilinear upsampling the sigmoid-0.5 boundary falls exactly on the scaled block edges.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgeseg.errors import EdgesegError, ImageError
from edgeseg.inference.postprocess import (
    LabelSpace,
    instance_inference,
    panoptic_inference,
    postprocess,
    semantic_inference,
    sigmoid,
    softmax,
    upsample_masks,
)
from edgeseg.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD, Letterbox, preprocess, preprocess_batch
from edgeseg.inference.result import Result, rgb_to_id
from edgeseg.inference.visualize import color_palette, draw_panoptic, side_by_side

S = 32
K = 3  # 0 person (thing), 1 car (thing), 2 sky (stuff); column 3 = no-object
META = LabelSpace(class_names=["person", "car", "sky"], isthing=[True, True, False], category_ids=[1, 3, 187])
ISTHING = META.isthing


def cls_row(probs: list[float]) -> np.ndarray:
    """Class logits whose softmax is exactly ``probs`` (K+1 entries)."""
    p = np.asarray(probs, dtype=np.float64)
    return np.log(p / p.sum()).astype(np.float32)


def confident(c: int, p: float = 0.99) -> np.ndarray:
    probs = [(1 - p) / K] * (K + 1)
    probs[c] = p
    return cls_row(probs)


def block(r0: int, r1: int, c0: int, c1: int, h: int = 8, w: int = 8) -> np.ndarray:
    m = np.full((h, w), -10.0, dtype=np.float32)
    m[r0:r1, c0:c1] = 10.0
    return m


def square_box() -> Letterbox:
    return Letterbox.for_image(S, S, S)


# ----------------------------------------------------------------------------- preprocess


def test_preprocess_shape_dtype_and_values():
    img = np.full((20, 30, 3), 255, dtype=np.uint8)
    x, lb = preprocess(img, S)
    assert x.shape == (1, 3, S, S) and x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]
    rh, rw = lb.resized_hw
    expected = (255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(x[0, :, :rh, :rw].mean(axis=(1, 2)), expected, rtol=1e-5)


def test_letterbox_geometry_non_square():
    img = np.zeros((48, 64, 3), dtype=np.uint8)
    x, lb = preprocess(img, S)
    assert lb.orig_hw == (48, 64)
    assert lb.resized_hw == (24, 32)
    assert lb.scale == pytest.approx(0.5)
    assert lb.pad_hw == (8, 0)
    # tall image: padding on the right instead
    lb2 = Letterbox.for_image(64, 16, S)
    assert lb2.resized_hw == (32, 8) and lb2.pad_hw == (0, 24)


def test_pad_region_is_zero_and_valid_region_is_not():
    img = np.full((48, 64, 3), 200, dtype=np.uint8)
    x, lb = preprocess(img, S)
    assert np.all(x[0, :, 24:, :] == 0.0)
    assert np.all(x[0, :, :24, :] != 0.0)
    # a mean-coloured image normalises to ~0 everywhere
    mean_img = np.empty((48, 64, 3), dtype=np.uint8)
    mean_img[:] = np.round(IMAGENET_MEAN).astype(np.uint8)
    xm, _ = preprocess(mean_img, S)
    assert np.abs(xm).max() < 0.01


def test_letterbox_coordinate_round_trip():
    lb = Letterbox.for_image(48, 64, S)
    np.testing.assert_allclose(lb.to_input([[64, 48], [0, 0]]), [[32, 24], [0, 0]])
    pts = np.array([[1.5, 2.25], [63.0, 47.0], [10.0, 30.0]])
    np.testing.assert_allclose(lb.to_original(lb.to_input(pts)), pts)
    # odd sizes: per-axis factors keep the image corner on the valid-region corner
    lb3 = Letterbox.for_image(37, 101, S)
    rh, rw = lb3.resized_hw
    np.testing.assert_allclose(lb3.to_input([101, 37]), [rw, rh])
    assert lb3.crop_valid(np.zeros((2, S, S))).shape == (2, rh, rw)


@pytest.mark.parametrize(
    "bad, needle",
    [
        (np.zeros((10, 10, 3), dtype=np.float32), "float32"),
        (np.zeros((10, 10), dtype=np.uint8), "(10, 10)"),
        (np.zeros((10, 10, 4), dtype=np.uint8), "(10, 10, 4)"),
        ([[0, 0, 0]], "list"),
    ],
)
def test_preprocess_errors_name_problem(bad, needle):
    with pytest.raises(ImageError) as info:
        preprocess(bad, S)
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)


def test_preprocess_batch():
    x, boxes = preprocess_batch([np.zeros((10, 20, 3), np.uint8), np.zeros((30, 15, 3), np.uint8)], S)
    assert x.shape == (2, 3, S, S)
    assert [b.orig_hw for b in boxes] == [(10, 20), (30, 15)]
    with pytest.raises(ImageError, match=r"images\[1\]"):
        preprocess_batch([np.zeros((10, 20, 3), np.uint8), np.zeros((10, 20), np.uint8)], S)


# ----------------------------------------------------------------------------- upsampling


def test_upsample_masks_exact_block_edges_and_crop():
    lb = Letterbox.for_image(32, 64, S)  # scale 0.5, valid input rows 0..15
    up = upsample_masks(block(0, 2, 0, 8)[None], lb)
    assert up.shape == (1, 32, 64)
    on = up[0] > 0
    assert on[:16].all() and not on[16:].any()


# ----------------------------------------------------------------------------- panoptic


def test_panoptic_thing_and_merged_stuff():
    # person = left half, two sky queries = right-top / right-bottom quarters, one no-object
    cls = np.stack([confident(0), confident(2), confident(2), confident(3)])
    masks = np.stack([block(0, 8, 0, 4), block(0, 4, 4, 8), block(4, 8, 4, 8), block(0, 8, 0, 8)])
    pan, segs = panoptic_inference(cls, masks, square_box(), ISTHING)
    assert pan.shape == (S, S) and pan.dtype == np.int32
    assert len(segs) == 2
    ids = [s["id"] for s in segs]
    assert len(set(ids)) == len(ids) and min(ids) >= 1
    person = next(s for s in segs if s["class_index"] == 0)
    sky = next(s for s in segs if s["class_index"] == 2)
    assert person["isthing"] and not sky["isthing"]
    assert person["score"] == pytest.approx(0.99, abs=1e-5)
    assert np.all(pan[:, :16] == person["id"])
    # both sky queries share one id; bilinear blur may leave the T-junction pixel unassigned
    assert np.all(pan[:15, 16:] == sky["id"]) and np.all(pan[17:, 16:] == sky["id"])
    assert S * S // 2 - 2 <= (pan == sky["id"]).sum() <= S * S // 2
    assert set(np.unique(pan).tolist()) <= set(ids) | {0}


def test_panoptic_drops_low_score_and_no_object():
    cls = np.stack([confident(0), cls_row([0.5, 0.45, 0.03, 0.02]), confident(3, 0.99), confident(1)])
    masks = np.stack([block(0, 4, 0, 4), block(4, 8, 4, 8), block(0, 8, 0, 8), block(4, 8, 0, 4)])
    pan, segs = panoptic_inference(cls, masks, square_box(), ISTHING)
    assert sorted(s["class_index"] for s in segs) == [0, 1]
    assert not pan[16:, 16:].any()  # low-score query's region stays empty
    assert len(segs) == 2


def test_panoptic_occluded_query_dropped():
    # car (0.85) sits under person (0.99) on 3/4 of its full-height mask -> visible ~0.25 < 0.8
    cls = np.stack([confident(0, 0.99), confident(1, 0.85)])
    masks = np.stack([block(0, 8, 0, 4), block(0, 8, 1, 5)])
    pan, segs = panoptic_inference(cls, masks, square_box(), ISTHING)
    assert [s["class_index"] for s in segs] == [0]
    assert not pan[:, 20:].any() and np.all(pan[:, :16] == segs[0]["id"])
    # with a permissive overlap threshold the visible sliver (columns 16..19) survives
    pan2, segs2 = panoptic_inference(cls, masks, square_box(), ISTHING, overlap_threshold=0.2)
    assert sorted(s["class_index"] for s in segs2) == [0, 1]
    car = next(s for s in segs2 if s["class_index"] == 1)
    assert np.array_equal(np.nonzero((pan2 == car["id"]).any(axis=0))[0], np.arange(16, 20))
    assert (pan2 == car["id"]).sum() == S * 4


def test_panoptic_no_kept_query_is_empty():
    cls = np.stack([confident(3), cls_row([0.4, 0.3, 0.2, 0.1])])
    masks = np.stack([block(0, 8, 0, 8), block(0, 8, 0, 8)])
    pan, segs = panoptic_inference(cls, masks, square_box(), ISTHING)
    assert segs == [] and pan.shape == (S, S) and not pan.any()


def test_panoptic_two_things_same_class_get_distinct_ids():
    cls = np.stack([confident(0), confident(0, 0.95)])
    masks = np.stack([block(0, 4, 0, 4), block(4, 8, 4, 8)])
    pan, segs = panoptic_inference(cls, masks, square_box(), ISTHING)
    assert len(segs) == 2 and segs[0]["id"] != segs[1]["id"]


# ----------------------------------------------------------------------------- instance


def _instance_inputs():
    cls = np.stack(
        [
            cls_row([0.6, 0.3, 0.05, 0.05]),  # person .6, car .3
            cls_row([0.05, 0.05, 0.85, 0.05]),  # sky .85 (stuff)
            cls_row([0.1, 0.1, 0.1, 0.7]),
            cls_row([0.2, 0.1, 0.1, 0.6]),
        ]
    )
    masks = np.stack(
        [
            np.full((8, 8), 2.0, np.float32),  # all on, sigmoid(2) everywhere
            np.full((8, 8), 3.0, np.float32),
            np.full((8, 8), -1.0, np.float32),  # empty
            block(0, 4, 0, 4),
        ]
    )
    return cls, masks


def test_instance_topk_thing_only_and_score():
    cls, masks = _instance_inputs()
    out = instance_inference(cls, masks, square_box(), ISTHING, topk=3)
    # top-3 pairs: (q1 sky .85), (q0 person .6), (q0 car .3); sky is stuff -> dropped
    assert out["class_index"].tolist() == [0, 1]
    assert out["query_index"].tolist() == [0, 0]
    s2 = float(sigmoid(np.float32(2.0)))
    np.testing.assert_allclose(out["scores"], [0.6 * s2, 0.3 * s2], rtol=1e-4)
    assert out["masks"].shape == (2, S, S) and out["masks"].dtype == bool and out["masks"].all()


def test_instance_without_thing_filter_and_score_threshold():
    cls, masks = _instance_inputs()
    out = instance_inference(cls, masks, square_box(), None, topk=3)
    assert sorted(out["class_index"].tolist()) == [0, 1, 2]
    assert np.all(np.diff(out["scores"]) <= 0)  # sorted descending
    out = instance_inference(cls, masks, square_box(), ISTHING, topk=100, score_threshold=0.25)
    assert np.all(out["scores"] >= 0.25) and out["class_index"].tolist() == [0, 1]
    # empty-mask query (q2) gets mask score 0 -> final score 0
    out = instance_inference(cls, masks, square_box(), ISTHING, topk=100)
    assert len(out["scores"]) == 8  # N * thing classes
    assert np.all(out["scores"][out["query_index"] == 2] == 0.0)


def test_instance_score_threshold_equals_filtering_the_full_output():
    """Pairs are dropped by class score before their masks are upsampled: exactly the pairs the
    unthresholded output scores at or above the threshold, with the same masks and scores."""
    rng = np.random.default_rng(3)
    cls = rng.normal(0, 2, (12, len(ISTHING) + 1)).astype(np.float32)
    masks = rng.normal(0, 3, (12, 8, 8)).astype(np.float32)
    lb = Letterbox(orig_hw=(20, 13), resized_hw=(32, 21), input_size=S, scale=32 / 20)
    full = instance_inference(cls, masks, lb, ISTHING, topk=40)
    for thr in (0.05, 0.2, 0.5):
        cut = instance_inference(cls, masks, lb, ISTHING, topk=40, score_threshold=thr)
        keep = full["scores"] >= thr
        assert 0 < keep.sum() < len(keep) or thr == 0.5  # the threshold really splits the pairs
        np.testing.assert_array_equal(cut["query_index"], full["query_index"][keep])
        np.testing.assert_array_equal(cut["class_index"], full["class_index"][keep])
        np.testing.assert_array_equal(cut["masks"], full["masks"][keep])
        np.testing.assert_allclose(cut["scores"], full["scores"][keep], rtol=1e-6)


# ----------------------------------------------------------------------------- semantic


def test_semantic_argmax_of_class_weighted_masks():
    cls = np.stack([confident(0), confident(2), confident(3)])
    masks = np.stack([block(0, 8, 0, 4), block(0, 8, 4, 8), block(0, 8, 0, 8)])
    sem = semantic_inference(cls, masks, square_box())
    assert sem.shape == (S, S) and sem.dtype == np.int32
    assert np.all(sem[:, :16] == 0) and np.all(sem[:, 16:] == 2)


def test_semantic_matches_einsum_on_smooth_maps():
    rng = np.random.default_rng(0)
    cls = rng.normal(size=(5, K + 1)).astype(np.float32)
    masks = np.repeat(rng.normal(size=(5, 1, 1)).astype(np.float32), 8, axis=1).repeat(8, axis=2)
    sem = semantic_inference(cls, masks, square_box())
    ref = np.einsum("qc,q->c", softmax(cls)[:, :-1], sigmoid(masks[:, 0, 0])).argmax()
    assert np.all(sem == ref)


def test_semantic_min_score_sets_ignore():
    cls = np.stack([confident(0)])
    masks = block(0, 4, 0, 8)[None]
    sem = semantic_inference(cls, masks, square_box(), min_score=0.5)
    assert np.all(sem[:16] == 0) and np.all(sem[16:] == 255)


# ----------------------------------------------------------------------------- padding


def test_padded_image_output_size_and_pad_crop():
    lb = Letterbox.for_image(32, 64, S)  # valid input rows 0..15 = mask rows 0..3
    cls = np.stack([confident(1), confident(0, 0.95)])
    masks = np.stack([block(4, 8, 0, 8), block(0, 2, 0, 8)])  # q0 only in the pad, q1 top quarter
    res = postprocess(cls[None], masks[None], lb, META)
    assert res.panoptic.shape == (32, 64) and res.semantic.shape == (32, 64)
    assert res.instance_masks.shape[1:] == (32, 64)
    assert [s.label for s in res.segments] == ["person"]
    seg = res.segments[0]
    assert seg.area == 16 * 64 and seg.bbox == (0, 0, 64, 16)
    # pad-only query alone: nothing at all
    pan, segs = panoptic_inference(cls[:1], masks[:1], lb, ISTHING)
    assert segs == [] and not pan.any()
    inst = instance_inference(cls[:1], masks[:1], lb, ISTHING)
    assert not inst["masks"].any()


# ----------------------------------------------------------------------------- Result


def _result() -> Result:
    cls = np.stack([confident(0), confident(2), confident(1, 0.97)])
    masks = np.stack([block(0, 4, 0, 4), block(4, 8, 0, 8), block(1, 3, 5, 7)])
    return postprocess(cls, masks, square_box(), META)


def test_result_segments_and_coco_round_trip():
    res = _result()
    assert [s.label for s in res.segments] == ["person", "sky", "car"]
    assert [s.category_id for s in res.segments] == [1, 187, 3]
    png, ann = res.to_coco_panoptic(image_id=7, file_name="000007.png")
    assert png.shape == (S, S, 3) and png.dtype == np.uint8
    np.testing.assert_array_equal(rgb_to_id(png), res.panoptic)
    assert ann["image_id"] == 7 and ann["file_name"] == "000007.png"
    by_id = {s["id"]: s for s in ann["segments_info"]}
    for sid, info in by_id.items():
        m = res.panoptic == sid
        ys, xs = np.nonzero(m)
        assert info["area"] == int(m.sum())
        assert info["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert info["iscrowd"] == 0
    car = next(s for s in ann["segments_info"] if s["category_id"] == 3)
    # isolated 8x8 block: bilinear upsampling rounds off its 4 corner pixels
    assert car["area"] == 8 * 8 - 4 and car["bbox"] == [20, 4, 8, 8]


def test_coco_encoding_of_large_ids():
    res = Result.empty((4, 4), META)
    res.panoptic[0, 0] = 300
    res.panoptic[1, 1] = 70000
    png, _ = res.to_coco_panoptic(1, "x.png")
    assert tuple(png[0, 0]) == (300 % 256, 1, 0)
    np.testing.assert_array_equal(rgb_to_id(png), res.panoptic)


def test_result_defaults_and_summary():
    res = _result()
    assert res.semantic.dtype == np.int32 and res.instance_masks.dtype == bool
    assert "3 segments" in res.summary() and "person" in res.summary()
    only_pan = postprocess(*_instance_inputs(), square_box(), META, tasks="panoptic")
    assert only_pan.instance_masks.shape == (0, S, S) and np.all(only_pan.semantic == 255)
    assert only_pan.tasks == ("panoptic",)


# ----------------------------------------------------------------------------- visualize


def test_overlay_changes_only_segment_pixels():
    res = _result()
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(S, S, 3), dtype=np.uint8)
    out = res.overlay(img, alpha=0.5, draw_labels=False)
    assert out.shape == img.shape and out.dtype == np.uint8
    changed = np.any(out != img, axis=-1)
    assert not changed[res.panoptic == 0].any()
    assert changed[res.panoptic > 0].mean() > 0.9
    labelled = draw_panoptic(img, res, draw_labels=True, min_label_area=0.0)
    assert labelled.shape == img.shape and labelled.dtype == np.uint8
    assert not np.array_equal(labelled, out)
    np.testing.assert_array_equal(draw_panoptic(img, res), draw_panoptic(img, res))  # deterministic


def test_overlay_rejects_wrong_image():
    res = _result()
    with pytest.raises(ImageError, match="float64"):
        res.overlay(np.zeros((S, S, 3)))
    with pytest.raises(ImageError):
        res.overlay(np.zeros((S + 1, S, 3), np.uint8))


def test_palette_and_side_by_side():
    p = color_palette(20)
    assert p.shape == (20, 3) and p.dtype == np.uint8
    assert len({tuple(c) for c in p.tolist()}) == 20
    np.testing.assert_array_equal(p, color_palette(20))
    a = np.zeros((20, 40, 3), np.uint8)
    b = np.zeros((10, 10, 3), np.uint8)
    out = side_by_side([a, b], ["torch", "onnx"], gap=4)
    assert out.dtype == np.uint8 and out.shape[1] == 40 + 4 + 20 and out.shape[0] > 20


# ----------------------------------------------------------------------------- validation


def test_shape_validation_errors():
    cls, masks = _instance_inputs()
    lb = square_box()
    with pytest.raises(EdgesegError, match=r"\(4, 4\)"):  # K+1 mismatch names the shape
        postprocess(cls, masks, lb, LabelSpace(["a", "b"], [True, False]))
    with pytest.raises(EdgesegError, match="N queries"):
        postprocess(cls, masks[:3], lb, META)
    with pytest.raises(EdgesegError, match="int64"):
        postprocess(cls.astype(np.int64), masks, lb, META)
    with pytest.raises(EdgesegError, match="batch"):
        postprocess(np.stack([cls, cls]), np.stack([masks, masks]), lb, META)
    with pytest.raises(EdgesegError, match=r"\(4, 8\)"):
        postprocess(cls, masks[:, 0], lb, META)
    with pytest.raises(EdgesegError, match="tasks"):
        postprocess(cls, masks, lb, META, tasks="depth")
    with pytest.raises(EdgesegError, match="isthing"):
        panoptic_inference(cls, masks, lb, [True])
    with pytest.raises(ValueError):
        LabelSpace(["a", "b"], [True])


def test_postprocess_accepts_batch_of_one_and_float16():
    cls, masks = _instance_inputs()
    a = postprocess(cls[None], masks[None], square_box(), META)
    b = postprocess(cls.astype(np.float16), masks.astype(np.float16), square_box(), META)
    np.testing.assert_array_equal(a.semantic, b.semantic)
    assert a.image_hw == (S, S)
