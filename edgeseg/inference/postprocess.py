"""Network outputs -> panoptic / instance / semantic results (numpy, every runtime).

Inputs per image: ``class_logits [N, K+1]`` (last column = no-object) and ``mask_logits
[N, h, w]`` at stride 4 of the padded ``S x S`` input. The rules follow the ORIGINAL
Mask2Former (facebookresearch/Mask2Former ``maskformer_model.py``: ``panoptic_inference``,
``instance_inference``, ``semantic_inference``), not Hugging Face's variant.

Mask geometry also follows the original: logits are bilinearly upsampled (align_corners=False)
to ``S x S``, the un-padded region is cropped and resized (bilinear) to the original image
size, and only then is the sigmoid applied. ``cv2.INTER_LINEAR`` uses the same half-pixel
centres as ``F.interpolate(..., mode="bilinear", align_corners=False)``. We only upsample the
queries that survive filtering; resizing is per-query, so this is mathematically identical.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from edgeseg.data.coco_panoptic import segment_area_bbox
from edgeseg.errors import EdgesegError
from edgeseg.inference.preprocess import Letterbox
from edgeseg.inference.result import IGNORE_INDEX, LabelSpace, Result, Segment

__all__ = [
    "LabelSpace",
    "TASKS",
    "softmax",
    "sigmoid",
    "upsample_masks",
    "panoptic_inference",
    "instance_inference",
    "semantic_inference",
    "postprocess",
]

TASKS = ("panoptic", "instance", "semantic")


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float32."""
    x = np.asarray(x, dtype=np.float32)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Overflow-free sigmoid in float32 (through tanh, in place on one new array: full-frame
    masks are tens of millions of values)."""
    x = np.asarray(x, dtype=np.float32)
    y = np.empty_like(x)
    np.multiply(x, np.float32(0.5), out=y)
    np.tanh(y, out=y)
    y += np.float32(1.0)
    y *= np.float32(0.5)
    return y


def upsample_masks(mask_logits: np.ndarray, letterbox: Letterbox) -> np.ndarray:
    """Map ``[n, h, w]`` maps at network-output resolution to ``[n, H, W]`` in the image frame.

    Bilinear to ``S x S`` (the padded input), crop the valid ``resized_hw`` region, bilinear to
    the original ``H x W``. Works on logits or any other per-channel map; returns float32.
    """
    maps = np.asarray(mask_logits)
    if maps.ndim != 3:
        raise EdgesegError(f"upsample_masks expects [n, h, w], got shape {maps.shape}")
    n = maps.shape[0]
    s = letterbox.input_size
    rh, rw = letterbox.resized_hw
    oh, ow = letterbox.orig_hw
    out = np.empty((n, oh, ow), dtype=np.float32)
    # one map at a time, written in place: OpenCV's multi-channel resize needs [h, w, n] in and
    # out, and the two transposes cost 8x the resizes on a 1280x720 frame
    for i in range(n):
        m = np.ascontiguousarray(maps[i], dtype=np.float32)
        if m.shape != (s, s):
            m = cv2.resize(m, (s, s), interpolation=cv2.INTER_LINEAR)
        m = m[:rh, :rw]
        if (rh, rw) != (oh, ow):
            cv2.resize(np.ascontiguousarray(m), (ow, oh), dst=out[i], interpolation=cv2.INTER_LINEAR)
        else:
            out[i] = m
    return out


def _check_isthing(isthing: Sequence[bool] | None, k: int) -> np.ndarray | None:
    if isthing is None:
        return None
    arr = np.asarray(isthing, dtype=bool).reshape(-1)
    if arr.shape != (k,):
        raise EdgesegError(f"isthing has {arr.size} entries but class_logits has K={k} classes (K+1={k + 1} columns)")
    return arr


def _check_outputs(class_logits: np.ndarray, mask_logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate one image's outputs; squeeze a leading batch dim of 1; return float32 arrays."""
    cl, ml = class_logits, mask_logits
    for name, arr in (("class_logits", cl), ("mask_logits", ml)):
        if not isinstance(arr, np.ndarray):
            raise EdgesegError(f"{name} must be a numpy array, got {type(arr).__name__}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise EdgesegError(f"{name} must have a float dtype, got dtype {arr.dtype}")
    if cl.ndim == 3:
        if cl.shape[0] != 1:
            raise EdgesegError(f"class_logits batch must be 1 (pass one image at a time), got shape {cl.shape}")
        cl = cl[0]
    if ml.ndim == 4:
        if ml.shape[0] != 1:
            raise EdgesegError(f"mask_logits batch must be 1 (pass one image at a time), got shape {ml.shape}")
        ml = ml[0]
    if cl.ndim != 2 or cl.shape[1] < 2:
        raise EdgesegError(f"class_logits must be [N, K+1] or [1, N, K+1] with K >= 1, got shape {class_logits.shape}")
    if ml.ndim != 3 or ml.shape[1] < 1 or ml.shape[2] < 1:
        raise EdgesegError(f"mask_logits must be [N, h, w] or [1, N, h, w], got shape {mask_logits.shape}")
    if cl.shape[0] != ml.shape[0]:
        raise EdgesegError(
            f"class_logits and mask_logits disagree on N queries: {class_logits.shape} vs {mask_logits.shape}"
        )
    return cl.astype(np.float32, copy=False), ml.astype(np.float32, copy=False)


def panoptic_inference(
    class_logits: np.ndarray,
    mask_logits: np.ndarray,
    letterbox: Letterbox,
    isthing: Sequence[bool],
    object_mask_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
    mask_threshold: float = 0.5,
) -> tuple[np.ndarray, list[dict]]:
    """Original Mask2Former panoptic merging.

    Returns ``(panoptic [H, W] int32, segments)``; ids start at 1, 0 = no segment. Each segment
    dict has ``id``, ``class_index`` (contiguous), ``isthing`` and ``score`` (class probability;
    for merged stuff the max over merged queries). Queries whose visible area (pixels where they
    win the ``score * sigmoid`` argmax) is below ``overlap_threshold`` of their own mask
    (``sigmoid >= mask_threshold``) are dropped; stuff queries of one class merge into one segment.
    """
    cl, ml = _check_outputs(class_logits, mask_logits)
    k = cl.shape[1] - 1
    things = _check_isthing(isthing, k)
    if things is None:
        raise EdgesegError("panoptic_inference needs isthing (one bool per class) to merge stuff classes")
    oh, ow = letterbox.orig_hw
    segments: list[dict] = []

    probs = softmax(cl, axis=-1)
    labels = probs.argmax(axis=-1)
    scores = probs[np.arange(len(labels)), labels]
    keep = np.flatnonzero((labels != k) & (scores > object_mask_threshold))
    if keep.size == 0:
        return np.zeros((oh, ow), dtype=np.int32), segments

    cur_scores, cur_classes = scores[keep], labels[keep]
    cur_masks = sigmoid(upsample_masks(ml[keep], letterbox))  # [n, H, W]
    n = len(keep)
    mask_ids = (cur_scores[:, None, None] * cur_masks).argmax(axis=0)
    # the original loops over queries with full-frame comparisons; the same counts in one pass
    # each: pixels each query wins, pixels of its own mask, and pixels it wins inside its own mask
    own_won = np.take_along_axis(cur_masks, mask_ids[None], axis=0)[0] >= mask_threshold
    won_area = np.bincount(mask_ids.ravel(), minlength=n)      # before thresholding, exactly as the original
    own_area = (cur_masks >= mask_threshold).reshape(n, -1).sum(axis=1)
    kept_area = np.bincount(mask_ids[own_won], minlength=n)

    stuff_memory: dict[int, int] = {}
    by_id: dict[int, dict] = {}
    id_of_query = np.zeros(n + 1, dtype=np.int32)  # n: the pixels no query keeps
    current_id = 0
    for q in range(n):
        pred_class = int(cur_classes[q])
        is_thing = bool(things[pred_class])
        if won_area[q] > 0 and own_area[q] > 0 and kept_area[q] > 0:
            if won_area[q] / own_area[q] < overlap_threshold:
                continue
            if not is_thing and pred_class in stuff_memory:
                seg_id = stuff_memory[pred_class]
                id_of_query[q] = seg_id
                by_id[seg_id]["score"] = max(by_id[seg_id]["score"], float(cur_scores[q]))
                continue
            current_id += 1
            if not is_thing:
                stuff_memory[pred_class] = current_id
            id_of_query[q] = current_id
            seg = {"id": current_id, "class_index": pred_class, "isthing": is_thing, "score": float(cur_scores[q])}
            by_id[current_id] = seg
            segments.append(seg)
    # every pixel has one winning query, so the segments never overlap and order does not matter
    panoptic = id_of_query[np.where(own_won, mask_ids, n)]
    return panoptic, segments


def instance_inference(
    class_logits: np.ndarray,
    mask_logits: np.ndarray,
    letterbox: Letterbox,
    isthing: Sequence[bool] | None,
    topk: int = 100,
    score_threshold: float = 0.0,
) -> dict[str, np.ndarray]:
    """Original Mask2Former instance inference.

    Top-``topk`` over all ``N*K`` (query, class) probabilities (no-object excluded), keep thing
    classes only when ``isthing`` is given (the original's ``panoptic_on`` rule), mask =
    ``logit > 0``, score = class prob x mean sigmoid inside the mask. Unlike the original
    (unordered top-k) the output is sorted by score, descending; ``score_threshold`` drops
    ``score < score_threshold`` (0.0 keeps the original behaviour).
    Returns ``{"masks": [M, H, W] bool, "class_index": [M] int64, "scores": [M] float32,
    "query_index": [M] int64}``.
    """
    cl, ml = _check_outputs(class_logits, mask_logits)
    k = cl.shape[1] - 1
    things = _check_isthing(isthing, k)
    if int(topk) < 1:
        raise EdgesegError(f"topk must be >= 1, got {topk}")
    oh, ow = letterbox.orig_hw

    flat = softmax(cl, axis=-1)[:, :k].reshape(-1)
    count = min(int(topk), flat.size)
    order = np.argsort(-flat, kind="stable")[:count]
    cls_scores = flat[order]
    classes = (order % k).astype(np.int64)
    queries = (order // k).astype(np.int64)
    if things is not None:
        sel = things[classes]
        cls_scores, classes, queries = cls_scores[sel], classes[sel], queries[sel]

    # a mask score is at most 1, so a pair whose class score is under the threshold cannot pass
    # it: dropped before its mask is upsampled (the same output, less work)
    sel = cls_scores >= score_threshold
    cls_scores, classes, queries = cls_scores[sel], classes[sel], queries[sel]

    uniq, inverse = np.unique(queries, return_inverse=True)
    logits = upsample_masks(ml[uniq], letterbox) if uniq.size else np.zeros((0, oh, ow), np.float32)
    masks = logits > 0
    area = masks.reshape(len(uniq), -1).sum(axis=1)
    # mean sigmoid inside each mask, on the mask's own pixels only (not the whole frame)
    inside = np.array([sigmoid(logits[i][masks[i]]).sum(dtype=np.float64) for i in range(len(uniq))], np.float64)
    mask_scores = (inside / (area + 1e-6)).astype(np.float32)
    final = (cls_scores * mask_scores[inverse]).astype(np.float32)

    sel = np.flatnonzero(final >= score_threshold)
    sel = sel[np.argsort(-final[sel], kind="stable")]
    return {
        "masks": masks[inverse[sel]].reshape(len(sel), oh, ow),
        "class_index": classes[sel],
        "scores": final[sel],
        "query_index": queries[sel],
    }


def semantic_inference(
    class_logits: np.ndarray,
    mask_logits: np.ndarray,
    letterbox: Letterbox,
    ignore_index: int = IGNORE_INDEX,
    min_score: float | None = None,
) -> np.ndarray:
    """Semantic map ``[H, W]`` int32 of contiguous class indices.

    ``argmax_c sum_q softmax(class)[q, c] * sigmoid(mask)[q]`` as in the original, but the sum is
    computed at mask resolution and the ``K``-channel map is upsampled (instead of all ``N``
    mask logits): ~N/K less memory/time on device. Because the sigmoid is applied before
    rather than after the bilinear resize, boundaries can differ by a pixel; interiors match.
    ``min_score``: pixels whose best class score is below it get ``ignore_index`` (default None:
    never, as in the original).
    """
    cl, ml = _check_outputs(class_logits, mask_logits)
    k = cl.shape[1] - 1
    probs = softmax(cl, axis=-1)[:, :k]  # [N, K]
    n, h, w = ml.shape
    semseg = (probs.T @ sigmoid(ml).reshape(n, h * w)).reshape(k, h, w)
    semseg = upsample_masks(semseg, letterbox)
    out = semseg.argmax(axis=0).astype(np.int32)
    if min_score is not None:
        out[semseg.max(axis=0) < min_score] = ignore_index
    return out


def _parse_tasks(tasks: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(tasks, str):
        tasks = TASKS if tasks == "all" else (tasks,)
    out = tuple(tasks)
    bad = [t for t in out if t not in TASKS]
    if bad or not out:
        raise EdgesegError(f"tasks must be 'all' or a subset of {TASKS}, got {tasks!r}")
    return out


def postprocess(
    class_logits: np.ndarray,
    mask_logits: np.ndarray,
    letterbox: Letterbox,
    meta: LabelSpace,
    tasks: str | Sequence[str] = "all",
    object_mask_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
    mask_threshold: float = 0.5,
    topk: int = 100,
    score_threshold: float = 0.0,
    semantic_min_score: float | None = None,
) -> Result:
    """Run the selected ``tasks`` ("all", "panoptic", "instance", "semantic" or a list) -> Result.

    Accepts ``[1, N, K+1]`` / ``[1, N, h, w]`` (batch of one) or unbatched outputs. ``K`` must
    equal ``len(meta.class_names)``.
    """
    task_set = _parse_tasks(tasks)
    cl, ml = _check_outputs(class_logits, mask_logits)
    if cl.shape[1] != meta.num_classes + 1:
        raise EdgesegError(
            f"class_logits has {cl.shape[1]} columns (shape {class_logits.shape}) but the label space "
            f"has {meta.num_classes} classes; expected K+1 = {meta.num_classes + 1} (last = no-object)"
        )
    hw = letterbox.orig_hw
    result = Result.empty(hw, meta)
    result.tasks = task_set

    if "panoptic" in task_set:
        pan, segs = panoptic_inference(
            cl, ml, letterbox, meta.isthing, object_mask_threshold, overlap_threshold, mask_threshold
        )
        result.panoptic = pan
        stats = segment_area_bbox(pan, [s["id"] for s in segs])
        for s in segs:
            ci = s["class_index"]
            result.segments.append(
                Segment(
                    id=s["id"],
                    class_index=ci,
                    category_id=meta.category_ids[ci],
                    label=meta.class_names[ci],
                    score=s["score"],
                    is_thing=s["isthing"],
                    area=stats[s["id"]][0],
                    bbox=tuple(stats[s["id"]][1]),
                )
            )
    if "instance" in task_set:
        inst = instance_inference(cl, ml, letterbox, meta.isthing, topk=topk, score_threshold=score_threshold)
        result.instance_masks = inst["masks"]
        result.instance_classes = inst["class_index"]
        result.instance_scores = inst["scores"]
    if "semantic" in task_set:
        result.semantic = semantic_inference(cl, ml, letterbox, min_score=semantic_min_score)
    return result
