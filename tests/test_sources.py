"""``Predictor.predict`` over one image, a list, a directory and a video, lazily."""
from __future__ import annotations


import cv2
import numpy as np
import pytest

from edgeseg.errors import ImageError
from edgeseg.inference.predictor import Predictor
from edgeseg.inference.result import LabelSpace, Result
from edgeseg.inference.sources import is_single_image, iter_images


class CountingAdapter:
    """A network double: fixed logits of the right shapes, counts its calls."""

    def __init__(self, size: int = 32, queries: int = 4, classes: int = 3) -> None:
        rng = np.random.default_rng(0)
        self.cls = rng.normal(size=(1, queries, classes + 1)).astype(np.float32)
        self.masks = rng.normal(size=(1, queries, size // 4, size // 4)).astype(np.float32)
        self.calls = 0
        self.input_size = size

    def infer(self, x):
        self.calls += 1
        return {"class_logits": self.cls, "mask_logits": self.masks}


@pytest.fixture
def predictor():
    labels = LabelSpace(["a", "b", "c"], [True, True, False])
    return Predictor(CountingAdapter(), labels, 32)


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((20, 30, 3), 40 * i, np.uint8))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (30, 20))
    for i in range(3):
        writer.write(np.full((20, 30, 3), 60 * i, np.uint8))
    writer.release()
    return folder, video


def test_single_image_returns_a_result(predictor, files):
    folder, _ = files
    assert isinstance(predictor.predict(folder / "0.png"), Result)
    assert isinstance(predictor.predict(np.zeros((10, 12, 3), np.uint8)), Result)
    assert is_single_image(folder / "0.png") and not is_single_image(folder)


def test_directory_list_and_video_are_lazy_streams(predictor, files):
    folder, video = files
    stream = predictor.predict(folder)
    assert predictor.adapter.calls == 0  # nothing runs until iterated
    results = list(stream)
    assert len(results) == 2 and all(r.panoptic.shape == (20, 30) for r in results)
    frames = predictor.predict(video)
    first = next(frames)
    assert predictor.adapter.calls == 3 and first.panoptic.shape == (20, 30)
    assert len(list(frames)) == 2  # the other two frames
    mixed = list(predictor.predict([folder / "1.png", np.zeros((8, 8, 3), np.uint8), video]))
    assert len(mixed) == 5


def test_names_and_bad_sources(files, tmp_path):
    folder, video = files
    assert [n for n, _ in iter_images(video)] == ["clip:0", "clip:1", "clip:2"]
    assert [n for n, _ in iter_images([folder, np.zeros((4, 4, 3), np.uint8)])] == ["0.png", "1.png", "array1"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no images"):
        list(iter_images(tmp_path / "empty"))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(ImageError, match="bad.mp4"):
        list(iter_images(bad))
