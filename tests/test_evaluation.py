"""Hand-worked checks of PQ (panopticapi's definition) and mIoU.

Maps are 10x10 (100 px) unless noted; a "column band" ``cols a-b`` covers all 10 rows.
The comments give the paper calculation; every assert would fail under the obvious mistake
(>= instead of >, no VOID term in the union, crowd counted as FN / FP, ...).
"""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from edgeseg.errors import DatasetError
from edgeseg.evaluation import (
    PQAccumulator,
    SemanticAccumulator,
    format_pq_table,
    id_to_rgb,
    panoptic_to_semantic,
    pq_compute,
    read_panoptic_png,
    rgb_to_id,
)

PERSON, CAR, SKY, ROAD, TREE = 1, 2, 3, 4, 5
CATEGORIES = [
    {"id": PERSON, "name": "person", "isthing": 1},
    {"id": CAR, "name": "car", "isthing": 1},
    {"id": SKY, "name": "sky", "isthing": 0},
    {"id": ROAD, "name": "road", "isthing": 0},
    {"id": TREE, "name": "tree", "isthing": 0},  # never present anywhere: always left out
]


def cols(ids: np.ndarray, a: int, b: int, value: int) -> np.ndarray:
    """Paint columns a..b (inclusive) of every row."""
    ids[:, a : b + 1] = value
    return ids


def blank() -> np.ndarray:
    return np.zeros((10, 10), dtype=np.int64)


def seg(sid: int, cat: int, crowd: int = 0) -> dict:
    return {"id": sid, "category_id": cat, "iscrowd": crowd}


def run(gt, gt_segs, pred, pred_segs) -> dict:
    acc = PQAccumulator(CATEGORIES)
    acc.update(gt, gt_segs, pred, pred_segs)
    return acc.summary()


def counts(summary: dict, name: str) -> tuple[int, int, int]:
    c = summary["per_class"][name]
    return c["tp"], c["fp"], c["fn"]


# ----------------------------------------------------------------------------- PQ


def test_perfect_match_is_100():
    # gt: person rows 0-4 (50 px), sky rows 5-9 (50 px); pred identical with other ids.
    # IoU = 1 for both -> PQ = SQ = RQ = 100 for each class, things, stuff and all (n = 2).
    gt = blank()
    gt[:5], gt[5:] = 1, 2
    pred = blank()
    pred[:5], pred[5:] = 7, 9
    s = run(gt, [seg(1, PERSON), seg(2, SKY)], pred, [seg(7, PERSON), seg(9, SKY)])
    for key, n in (("all", 2), ("things", 1), ("stuff", 1)):
        assert s[key] == pytest.approx({"pq": 100.0, "sq": 100.0, "rq": 100.0, "n": n})
    assert counts(s, "person") == (1, 0, 0)


def test_iou_exactly_half_is_not_a_match():
    # gt person cols 0-3 (40 px), rest VOID. pred person cols 0-1 (20 px), all on the gt segment.
    # inter = 20, union = 20 + 40 - 20 - 0 (no pred px on VOID) = 40 -> IoU = 0.5, NOT > 0.5.
    # -> FN (gt) + FP (pred: 0 px on VOID): PQ = 0 / (0 + .5 + .5) = 0, class counted (n = 1).
    # (With >= it would be TP: PQ = 50.)
    gt = cols(blank(), 0, 3, 1)
    pred = cols(blank(), 0, 1, 1)
    s = run(gt, [seg(1, PERSON)], pred, [seg(1, PERSON)])
    assert counts(s, "person") == (0, 1, 1)
    assert s["all"] == pytest.approx({"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 1})

    # Control: pred cols 0-2 (30 px): IoU = 30 / 40 = 0.75 -> TP, PQ = SQ = 75, RQ = 100.
    s = run(gt, [seg(1, PERSON)], cols(blank(), 0, 2, 1), [seg(1, PERSON)])
    assert s["all"] == pytest.approx({"pq": 75.0, "sq": 75.0, "rq": 100.0, "n": 1})


def test_pred_pixels_on_void_leave_the_union():
    # gt person cols 0-3 (40 px), cols 4-9 VOID. pred person cols 1-8 (80 px).
    # inter = cols 1-3 = 30; pred on VOID = cols 4-8 = 50.
    # plain IoU = 30 / (80 + 40 - 30) = 30 / 90 = 0.33 (would be FN + FP)
    # panoptic IoU = 30 / (90 - 50) = 30 / 40 = 0.75 -> TP: PQ = SQ = 75, RQ = 100.
    gt = cols(blank(), 0, 3, 1)
    pred = cols(blank(), 1, 8, 1)
    s = run(gt, [seg(1, PERSON)], pred, [seg(1, PERSON)])
    assert counts(s, "person") == (1, 0, 0)
    assert s["all"] == pytest.approx({"pq": 75.0, "sq": 75.0, "rq": 100.0, "n": 1})


def test_unmatched_pred_mostly_on_void_is_not_a_false_positive():
    # gt sky cols 0-5 (60 px), cols 6-9 VOID (40 px).
    # pred sky cols 0-3 (40 px): IoU = 40 / 60 -> TP.
    # pred person cols 4-9 (60 px): no person gt; on VOID 40 / 60 = 0.67 > 0.5 -> ignored.
    # person: tp = fp = fn = 0 -> left out. all = sky: PQ = SQ = 66.67, RQ = 100, n = 1.
    gt = cols(blank(), 0, 5, 1)
    pred = cols(cols(blank(), 0, 3, 1), 4, 9, 2)
    s = run(gt, [seg(1, SKY)], pred, [seg(1, SKY), seg(2, PERSON)])
    assert counts(s, "person") == (0, 0, 0)
    assert s["all"] == pytest.approx({"pq": 200 / 3, "sq": 200 / 3, "rq": 100.0, "n": 1})

    # Exactly half on VOID is not enough: gt sky cols 0-6 (70 px), VOID cols 7-9 (30 px).
    # sky: IoU = 40 / 70 = 0.5714 -> TP. person cols 4-9: VOID 30 / 60 = 0.5, not > 0.5 -> FP.
    # sky PQ = SQ = 57.14, RQ = 100; person PQ = SQ = RQ = 0 (fp only, counted).
    # all: PQ = SQ = 57.14 / 2 = 28.57, RQ = 100 / 2 = 50, n = 2.
    gt = cols(blank(), 0, 6, 1)
    s = run(gt, [seg(1, SKY)], pred, [seg(1, SKY), seg(2, PERSON)])
    assert counts(s, "person") == (0, 1, 0)
    assert s["all"] == pytest.approx({"pq": 200 / 7, "sq": 200 / 7, "rq": 50.0, "n": 2})


def crowd_gt() -> tuple[np.ndarray, list[dict]]:
    # gt: person CROWD cols 0-4 (50 px, id 5); car cols 5-9 (50 px, id 6).
    gt = cols(cols(blank(), 0, 4, 5), 5, 9, 6)
    return gt, [seg(5, PERSON, crowd=1), seg(6, CAR)]


def test_crowd_is_never_matched_and_never_a_false_negative():
    # pred person == crowd region exactly (IoU would be 1) and pred car == car gt.
    # crowd: not matchable, not FN; pred person: 50/50 on same-class crowd -> not FP.
    # person: 0/0/0 -> left out; car TP IoU 1 -> all PQ = 100 with n = 1.
    gt, gt_segs = crowd_gt()
    pred = cols(cols(blank(), 0, 4, 1), 5, 9, 2)
    s = run(gt, gt_segs, pred, [seg(1, PERSON), seg(2, CAR)])
    assert counts(s, "person") == (0, 0, 0)
    assert s["all"] == pytest.approx({"pq": 100.0, "sq": 100.0, "rq": 100.0, "n": 1})


def test_unmatched_pred_mostly_on_same_class_crowd_is_not_a_false_positive():
    # pred person cols 0-5 (60 px): 50 on person crowd + 10 on car -> 50/60 = 0.83 > 0.5 -> ignored.
    # pred car cols 6-9 (40 px): IoU with car = 40 / 50 = 0.8 -> TP.
    # car PQ = SQ = 80, RQ = 100; person left out -> all PQ 80, n = 1.
    gt, gt_segs = crowd_gt()
    pred = cols(cols(blank(), 0, 5, 1), 6, 9, 2)
    s = run(gt, gt_segs, pred, [seg(1, PERSON), seg(2, CAR)])
    assert counts(s, "person") == (0, 0, 0)
    assert counts(s, "car") == (1, 0, 0)
    assert s["all"] == pytest.approx({"pq": 80.0, "sq": 80.0, "rq": 100.0, "n": 1})


def test_unmatched_pred_on_other_class_crowd_is_a_false_positive():
    # pred car A cols 0-3 (40 px) lies on the PERSON crowd: crowd of another class does not
    # excuse it -> car FP. pred car B cols 5-9 == car gt -> TP (IoU 1).
    # car: tp 1, fp 1 -> PQ = 1 / (1 + .5) = 66.67, SQ = 100, RQ = 66.67.
    gt, gt_segs = crowd_gt()
    pred = cols(cols(blank(), 0, 3, 1), 5, 9, 2)
    s = run(gt, gt_segs, pred, [seg(1, CAR), seg(2, CAR)])
    assert counts(s, "car") == (1, 1, 0)
    assert s["all"] == pytest.approx({"pq": 200 / 3, "sq": 100.0, "rq": 200 / 3, "n": 1})


def test_class_with_only_false_positives_counts_as_zero_and_unseen_classes_are_left_out():
    # gt sky everywhere (100 px). pred sky cols 0-8 (90 px) IoU 0.9 -> TP; pred person col 9
    # (10 px, all on sky, none on VOID) -> person FP.
    # sky PQ = SQ = 90, RQ = 100; person PQ = SQ = RQ = 0 (tp+fp+fn = 1: counted).
    # car / road / tree: tp+fp+fn = 0 -> left out.
    # all: PQ = SQ = (90 + 0) / 2 = 45, RQ = 50, n = 2. things: person only -> 0, n = 1.
    gt = np.ones((10, 10), dtype=np.int64)
    pred = cols(cols(blank(), 0, 8, 1), 9, 9, 2)
    s = run(gt, [seg(1, SKY)], pred, [seg(1, SKY), seg(2, PERSON)])
    assert s["all"] == pytest.approx({"pq": 45.0, "sq": 45.0, "rq": 50.0, "n": 2})
    assert s["things"] == pytest.approx({"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 1})
    assert s["stuff"] == pytest.approx({"pq": 90.0, "sq": 90.0, "rq": 100.0, "n": 1})
    assert counts(s, "person") == (0, 1, 0)
    assert counts(s, "road") == (0, 0, 0)


def test_split_segment_gives_one_tp_and_one_fp():
    # gt person everywhere (100 px). pred splits it 70/30: cols 0-6 and cols 7-9.
    # part 1: IoU = 70 / 100 = 0.7 -> TP. part 2: IoU = 30 / 100 = 0.3 -> FP (0 px on VOID).
    # PQ = 0.7 / (1 + .5) = 46.67, SQ = 70, RQ = 1 / 1.5 = 66.67.
    gt = np.ones((10, 10), dtype=np.int64)
    pred = cols(cols(blank(), 0, 6, 1), 7, 9, 2)
    s = run(gt, [seg(1, PERSON)], pred, [seg(1, PERSON), seg(2, PERSON)])
    assert counts(s, "person") == (1, 1, 0)
    assert s["per_class"]["person"]["pq"] == pytest.approx(70 / 1.5)
    assert s["all"] == pytest.approx({"pq": 70 / 1.5, "sq": 70.0, "rq": 200 / 3, "n": 1})


def things_stuff_image() -> tuple[np.ndarray, list[dict], np.ndarray, list[dict]]:
    # gt: person rows 0-4 cols 0-4 (25), car rows 0-4 cols 5-9 (25), sky rows 5-7 (30),
    #     road rows 8-9 (20).
    # pred: person exact (IoU 1); car rows 0-4 cols 6-9 (20 px, col 5 unlabeled) IoU 20/25 = .8;
    #       sky exact (IoU 1); road rows 8-9 cols 0-3 (8 px) IoU 8/20 = .4 -> road FN + FP.
    gt = blank()
    gt[:5, :5], gt[:5, 5:], gt[5:8], gt[8:] = 1, 2, 3, 4
    pred = blank()
    pred[:5, :5], pred[:5, 6:], pred[5:8], pred[8:, :4] = 11, 12, 13, 14
    gt_segs = [seg(1, PERSON), seg(2, CAR), seg(3, SKY), seg(4, ROAD)]
    pred_segs = [seg(11, PERSON), seg(12, CAR), seg(13, SKY), seg(14, ROAD)]
    return gt, gt_segs, pred, pred_segs


def test_things_and_stuff_averages():
    # person 100/100/100, car 80/80/100, sky 100/100/100, road 0/0/0 (tp 0, fp 1, fn 1).
    # things: PQ = SQ = (100 + 80) / 2 = 90, RQ = 100, n = 2
    # stuff:  PQ = SQ = RQ = (100 + 0) / 2 = 50, n = 2
    # all:    PQ = SQ = (100 + 80 + 100 + 0) / 4 = 70, RQ = 300 / 4 = 75, n = 4
    s = run(*things_stuff_image())
    assert s["things"] == pytest.approx({"pq": 90.0, "sq": 90.0, "rq": 100.0, "n": 2})
    assert s["stuff"] == pytest.approx({"pq": 50.0, "sq": 50.0, "rq": 50.0, "n": 2})
    assert s["all"] == pytest.approx({"pq": 70.0, "sq": 70.0, "rq": 75.0, "n": 4})
    assert counts(s, "road") == (0, 1, 1)
    assert s["per_class"]["car"]["isthing"] is True and s["per_class"]["sky"]["isthing"] is False


def test_merge_equals_single_accumulator():
    # Split segment image + things/stuff image: person gets tp 2 (IoU .7 + 1), fp 1.
    # person PQ = 1.7 / (2 + .5) = 68, SQ = 85, RQ = 80.
    images = [
        (np.ones((10, 10), np.int64), [seg(1, PERSON)], cols(cols(blank(), 0, 6, 1), 7, 9, 2),
         [seg(1, PERSON), seg(2, PERSON)]),
        things_stuff_image(),
    ]
    single = PQAccumulator(CATEGORIES)
    parts = [PQAccumulator({c["id"]: c for c in CATEGORIES}) for _ in images]
    for img, part in zip(images, parts):
        single.update(*img)
        part.update(*img)
    parts[0].merge(parts[1])
    assert parts[0].summary() == single.summary()
    assert parts[0].num_images == 2
    assert parts[0].bootstrap_ci(samples=200) == single.bootstrap_ci(samples=200)
    person = single.summary()["per_class"]["person"]
    assert (person["pq"], person["sq"], person["rq"]) == pytest.approx((68.0, 85.0, 80.0))


def test_bootstrap_interval_collapses_on_identical_images_and_brackets_a_mixed_split():
    same = PQAccumulator(CATEGORIES)
    for _ in range(5):
        same.update(*things_stuff_image())
    ci = same.bootstrap_ci(samples=300)
    # every resample is five copies of one image: PQ 70 / 90 / 50 exactly (see the test above)
    assert ci["all"] == pytest.approx([70.0, 70.0]) and ci["things"] == pytest.approx([90.0, 90.0])
    assert ci["stuff"] == pytest.approx([50.0, 50.0]) and ci["images"] == 5 and ci["level"] == 0.95

    # 10 images with the person found exactly, 10 with it missed: person PQ = 10 / (10 + 5) = 66.7.
    # A resample with k hits has PQ k / (k + (20 - k) / 2); k ~ Binomial(20, 1/2) puts the
    # 95 % interval at k = 5..15 (P(k <= 5) = 2.1 %), i.e. about [40, 86]: wide, around the point.
    mixed = PQAccumulator(CATEGORIES)
    person = np.ones((10, 10), np.int64)
    for i in range(20):
        pred, segs = (person, [seg(1, PERSON)]) if i % 2 == 0 else (blank(), [])
        mixed.update(person, [seg(1, PERSON)], pred, segs)
    point = mixed.summary()["all"]["pq"]
    lo, hi = mixed.bootstrap_ci(samples=2000)["all"]
    assert point == pytest.approx(200 / 3)
    assert 35 < lo < point < hi < 90 and hi - lo > 20
    assert mixed.bootstrap_ci(samples=2000, seed=1) != mixed.bootstrap_ci(samples=2000, seed=2)

    with pytest.raises(DatasetError, match="no images"):
        PQAccumulator(CATEGORIES).bootstrap_ci()


def test_input_errors_name_the_problem():
    gt = cols(blank(), 0, 3, 1)
    pred = cols(cols(blank(), 0, 3, 1), 4, 5, 2)
    acc = PQAccumulator(CATEGORIES)
    with pytest.raises(DatasetError, match=r"image 42: pred segment id\(s\) \[2\] are in the id map but not in segments_info"):
        acc.update(gt, [seg(1, PERSON)], pred, [seg(1, PERSON)], image_id=42)
    with pytest.raises(DatasetError, match=r"\[3\] do not appear in the id map"):
        acc.update(gt, [seg(1, PERSON)], gt, [seg(1, PERSON), seg(3, CAR)])
    with pytest.raises(DatasetError, match="unknown category_id 99"):
        acc.update(gt, [seg(1, PERSON)], gt, [seg(1, 99)])
    with pytest.raises(DatasetError, match="shape"):
        acc.update(gt, [seg(1, PERSON)], gt[:5], [seg(1, PERSON)])
    with pytest.raises(DatasetError, match="integer dtype"):
        acc.update(gt.astype(float), [seg(1, PERSON)], gt, [seg(1, PERSON)])
    assert acc.num_images == 0  # failed updates add nothing
    assert acc.summary()["all"]["n"] == 0


def test_format_pq_table():
    text = format_pq_table(run(*things_stuff_image()))
    lines = text.splitlines()
    assert lines[0].split() == ["|", "PQ", "SQ", "RQ", "N"]
    assert lines[2].split() == ["All", "|", "70.0", "70.0", "75.0", "4"]
    assert lines[3].split() == ["Things", "|", "90.0", "90.0", "100.0", "2"]
    assert any(line.split()[:5] == ["car", "|", "80.0", "80.0", "100.0"] for line in lines)
    assert "person" not in format_pq_table(run(*things_stuff_image()), per_class=False)


# ----------------------------------------------------------------------------- pq_compute files


def write_png(path, ids: np.ndarray) -> None:
    rgb = id_to_rgb(ids)
    assert cv2.imwrite(str(path), rgb[..., ::-1])  # OpenCV writes BGR


def test_rgb_id_roundtrip(tmp_path):
    ids = np.array([[0, 1, 255, 256], [65535, 65536, 3 + 256 * 7 + 65536 * 9, 256**3 - 1]])
    assert np.array_equal(rgb_to_id(id_to_rgb(ids)), ids)
    write_png(tmp_path / "x.png", ids)
    assert np.array_equal(read_panoptic_png(tmp_path / "x.png"), ids)
    # R + 256 G + 256^2 B: pure red 1 -> id 1, pure blue 1 -> 65536.
    assert rgb_to_id(np.array([[[1, 0, 0], [0, 0, 1]]], np.uint8)).tolist() == [[1, 65536]]


def write_dataset(tmp_path, images) -> tuple:
    """images: list of (gt, gt_segs, pred, pred_segs); ids are remapped to use G/B channels."""
    big = {i: i * 256 + 65536 * 3 + 7 for i in range(1, 100)}
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    gt_anns, pred_anns = [], []
    for k, (gt, gt_segs, pred, pred_segs) in enumerate(images):
        for ids, segs, folder, anns in ((gt, gt_segs, gt_dir, gt_anns), (pred, pred_segs, pred_dir, pred_anns)):
            remapped = np.vectorize(lambda v: big.get(v, 0))(ids)
            write_png(folder / f"{k:03d}.png", remapped)
            anns.append({
                "image_id": k,
                "file_name": f"{k:03d}.png",
                "segments_info": [dict(s, id=big[s["id"]]) for s in segs],
            })
    gt_json = {"annotations": gt_anns, "categories": CATEGORIES, "images": []}
    pred_json = {"annotations": pred_anns[::-1]}  # order must not matter (matched by image_id)
    (tmp_path / "gt.json").write_text(json.dumps(gt_json))
    (tmp_path / "pred.json").write_text(json.dumps(pred_json))
    return tmp_path / "gt.json", gt_dir, tmp_path / "pred.json", pred_dir


def two_images():
    split = (np.ones((10, 10), np.int64), [seg(1, PERSON)], cols(cols(blank(), 0, 6, 1), 7, 9, 2),
             [seg(1, PERSON), seg(2, PERSON)])
    return [split, things_stuff_image()]


def test_pq_compute_end_to_end_matches_accumulator(tmp_path):
    images = two_images()
    acc = PQAccumulator(CATEGORIES)
    for img in images:
        acc.update(*img)
    result = pq_compute(*write_dataset(tmp_path, images))
    assert result == acc.summary()
    assert result["per_class"]["person"]["pq"] == pytest.approx(68.0)
    # Folder None -> JSON path without extension (panopticapi's default).
    (tmp_path / "gt").rename(tmp_path / "gt_png")
    with pytest.raises(DatasetError, match="gt PNG folder not found"):
        pq_compute(tmp_path / "gt.json", None, tmp_path / "pred.json", None)


def test_pq_compute_file_errors(tmp_path):
    gt_json, gt_dir, pred_json, pred_dir = write_dataset(tmp_path, two_images())
    pred = json.loads(pred_json.read_text())

    # A gt image without a prediction.
    bad = {"annotations": [a for a in pred["annotations"] if a["image_id"] != 1]}
    with pytest.raises(DatasetError, match="no prediction for the image with id: 1"):
        pq_compute(gt_json, gt_dir, bad, pred_dir)

    # A file name that climbs out of its folder.
    bad = json.loads(json.dumps(pred))
    bad["annotations"][0]["file_name"] = "../gt/000.png"
    with pytest.raises(DatasetError, match="escapes its folder"):
        pq_compute(gt_json, gt_dir, bad, pred_dir)
    bad["annotations"][0]["file_name"] = str(gt_dir / "000.png")
    with pytest.raises(DatasetError, match="must be relative"):
        pq_compute(gt_json, gt_dir, bad, pred_dir)

    # A missing PNG is named.
    (pred_dir / "001.png").unlink()
    with pytest.raises(DatasetError, match=r"001\.png: panoptic PNG not found"):
        pq_compute(gt_json, gt_dir, pred_json, pred_dir)
    with pytest.raises(DatasetError, match="nope.json: pred JSON not found"):
        pq_compute(gt_json, gt_dir, tmp_path / "nope.json", pred_dir)


# ----------------------------------------------------------------------------- mIoU


def test_miou_hand_worked_with_ignore_and_absent_class():
    # 4 classes, ignore 255. Pixels p0..p9 (2x5):
    # gt   = 0 0 0 1 1 | 1 2 2 255 255
    # pred = 0 0 1 1 1 | 2 2 2 0   3      (p8, p9 are ignored)
    # class 0: gt {p0,p1,p2}, pred {p0,p1}        -> 2 / (3 + 2 - 2) = 66.67
    # class 1: gt {p3,p4,p5}, pred {p2,p3,p4}     -> 2 / (3 + 3 - 2) = 50
    # class 2: gt {p6,p7},    pred {p5,p6,p7}     -> 2 / (2 + 3 - 2) = 66.67
    # class 3: only predicted on an ignored pixel -> absent: NaN, out of the mean
    # mIoU = (66.67 + 50 + 66.67) / 3 = 61.11; pixel acc = 6 / 8 = 75.
    gt = np.array([[0, 0, 0, 1, 1], [1, 2, 2, 255, 255]])
    pred = np.array([[0, 0, 1, 1, 1], [2, 2, 2, 0, 3]])
    acc = SemanticAccumulator(4, class_names=["a", "b", "c", "d"])
    acc.update(gt, pred)
    s = acc.summary()
    assert s["miou"] == pytest.approx((200 / 3 + 50 + 200 / 3) / 3)
    assert s["pixel_acc"] == pytest.approx(75.0)
    assert s["n"] == 3
    assert s["per_class_iou"]["a"] == pytest.approx(200 / 3)
    assert s["per_class_iou"]["b"] == pytest.approx(50.0)
    assert math.isnan(s["per_class_iou"]["d"])

    # merge: the same image twice gives the same ratios.
    other = SemanticAccumulator(4, class_names=["a", "b", "c", "d"])
    other.update(gt, pred)
    acc.merge(other)
    assert acc.summary()["miou"] == pytest.approx(s["miou"])
    assert acc.confusion.sum() == 16


def test_miou_out_of_range_prediction_is_a_miss_and_bad_gt_raises():
    # gt = 0 0 1 1; pred = 0 255 1 1 -> class 0: 1 / (2 + 1 - 1) = 50; class 1: 100.
    acc = SemanticAccumulator(2)
    acc.update(np.array([[0, 0, 1, 1]]), np.array([[0, 255, 1, 1]]))
    s = acc.summary()
    assert s["per_class_iou"] == pytest.approx({"0": 50.0, "1": 100.0})
    assert s["pixel_acc"] == pytest.approx(75.0)
    with pytest.raises(DatasetError, match=r"gt has class values \[7\]"):
        acc.update(np.array([[7]]), np.array([[0]]))
    assert SemanticAccumulator(3).summary()["miou"] == 0.0  # nothing seen: NaN-safe


def test_panoptic_to_semantic():
    # ids: 0 = VOID -> 255; segment 5 is a person crowd -> keeps person's index.
    ids = np.array([[0, 5, 6], [6, 7, 0]])
    segs = [seg(5, PERSON, crowd=1), seg(6, SKY), seg(7, CAR)]
    out = panoptic_to_semantic(ids, segs, {PERSON: 0, CAR: 1, SKY: 2})
    assert out.tolist() == [[255, 0, 2], [2, 1, 255]]
    with pytest.raises(DatasetError, match="segment id 7 is in the map"):
        panoptic_to_semantic(ids, segs[:2], {PERSON: 0, CAR: 1, SKY: 2})
    with pytest.raises(DatasetError, match="unknown category_id 2"):
        panoptic_to_semantic(ids, segs, {PERSON: 0, SKY: 2})


def test_paired_bootstrap_sees_a_gap_only_where_there_is_one():
    import numpy as np

    from edgeseg.errors import DatasetError
    from edgeseg.evaluation.panoptic_quality import paired_bootstrap

    rng = np.random.default_rng(0)
    isthing = np.array([True, True, False, False])
    base = rng.integers(0, 3, (60, 4, 4)).astype(float)
    base[..., 0] = 0.7 * base[..., 1]  # IoU sum of the TPs: 0.7 each
    better = base.copy()
    better[..., 0] = 0.8 * better[..., 1]  # the same matches, each 0.1 IoU higher
    same = paired_bootstrap([base], [base], isthing, samples=200)
    assert same["all"] == {"diff": 0.0, "ci": [0.0, 0.0]}
    gap = paired_bootstrap([base, base], [better, better], isthing, samples=200)
    lo, hi = gap["all"]["ci"]
    assert gap["all"]["diff"] > 0 and 0 < lo <= gap["all"]["diff"] <= hi
    with pytest.raises(DatasetError, match="different images"):
        paired_bootstrap([base], [better[:50]], isthing)


def _prediction_set(folder, maps: dict[int, tuple[np.ndarray, dict[int, int]]]):
    """A COCO-panoptic prediction set written by the same writer predict.py uses."""
    from edgeseg.inference.predict_files import CocoPanopticWriter
    from edgeseg.inference.result import LabelSpace, Result, Segment

    labels = LabelSpace.from_coco_categories([{"id": 1, "name": "a", "isthing": 1}, {"id": 2, "name": "b", "isthing": 0}])
    writer = CocoPanopticWriter(folder, labels)
    for image_id, (pan, cats) in maps.items():
        segments = [Segment(sid, cat - 1, cat, "ab"[cat - 1], 0.9, cat == 1, int((pan == sid).sum()), (0, 0, 1, 1))
                    for sid, cat in cats.items()]
        writer.add(f"{image_id:06d}.png", Result(image_hw=pan.shape, labels=labels, panoptic=pan, segments=segments))
    return writer.close()


def test_prediction_sets_compare_by_image_with_ids_renumbered(tmp_path):
    from edgeseg.evaluation.agreement import compare_prediction_sets

    pan = np.zeros((10, 10), np.int32)
    pan[:5] = 1  # a thing on the top half (50 px)
    pan[5:, :4] = 2  # stuff, 20 px; 30 px void
    same_ids_swapped = np.where(pan == 1, 7, np.where(pan == 2, 3, 0)).astype(np.int32)
    a = _prediction_set(tmp_path / "a", {0: (pan, {1: 1, 2: 2}), 1: (pan, {1: 1, 2: 2})})
    b = _prediction_set(tmp_path / "b", {1: (same_ids_swapped, {7: 1, 3: 2}),  # other order, other ids: alike
                                         0: (pan, {1: 1, 2: 1})})  # the stuff segment with another class
    res = compare_prediction_sets(a, b)
    by_id = {r["image_id"]: r for r in res["per_image"]}
    assert by_id[1]["agreement_pct"] == 100.0
    assert by_id[0]["agreement_pct"] == 80.0  # the 20 px of the relabelled segment disagree
    assert (res["images"], res["mean_agreement_pct"], res["min_agreement_pct"]) == (2, 90.0, 80.0)
    assert (res["equal_segment_counts"], res["segments_a"], res["segments_b"]) == (2, 4, 4)

    c = _prediction_set(tmp_path / "c", {0: (pan, {1: 1, 2: 2})})
    with pytest.raises(DatasetError, match="no prediction for the image with id 1"):
        compare_prediction_sets(a, c)
