"""Distillation with unlabelled images: teacher labels cached as a split, pools mixed to a share."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import SHIPPED, tiny_model_config, tiny_train_config

from edgeseg.config import DistillConfig, TrainConfig
from edgeseg.data.coco_panoptic import CocoPanoptic
from edgeseg.data.image_io import read_id_png
from edgeseg.data.mixed import MixedPanoptic, repeats_for_share
from edgeseg.errors import ConfigError, DatasetError
from edgeseg.training.trainer import label_space_of


def test_repeats_reach_the_asked_share():
    assert repeats_for_share(500, 2000, 0.5) == (4, 1)  # the few labelled images repeated
    assert repeats_for_share(2000, 500, 0.5) == (1, 4)
    assert repeats_for_share(500, 2000, 0.0) == (1, 1)
    r1, r2 = repeats_for_share(300, 1000, 0.8)
    assert abs(r2 * 1000 / (r1 * 300 + r2 * 1000) - 0.8) < 0.05
    with pytest.raises(ValueError):
        repeats_for_share(0, 10, 0.5)


def test_mixed_pools_index_every_image_and_refuse_other_label_spaces(tiny_data, shipped_data, tmp_path):
    train, val = CocoPanoptic(tiny_data, "train"), CocoPanoptic(tiny_data, "val")
    mixed = MixedPanoptic([(train, 1), (val, 2)])
    assert len(mixed) == len(train) + 2 * len(val)
    assert mixed.shares()[1] == pytest.approx(2 * len(val) / len(mixed))
    # index -> (pool, image): the repeated pool cycles through its images
    assert mixed.load_raw(len(train)).file_name == val.load_raw(0).file_name
    assert mixed.load_raw(len(train) + len(val)).file_name == val.load_raw(0).file_name
    assert mixed.load_raw(len(mixed) - 1).file_name == val.load_raw(len(val) - 1).file_name
    with pytest.raises(IndexError):
        mixed.load_raw(len(mixed))
    other = tmp_path / "other"
    shutil.copytree(tiny_data, other)
    doc_path = other / "annotations" / "panoptic_val.json"
    doc = json.loads(doc_path.read_text())
    doc["categories"][0]["name"] = "not-a-shape"
    doc_path.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="categories differ"):
        MixedPanoptic([(train, 1), (CocoPanoptic(other, "val"), 1)])


@pytest.fixture(scope="module")
def frames(shipped_data, tmp_path_factory):
    """Six val images of the built-in set in a bare folder, as a user's unlabelled frames."""
    folder = tmp_path_factory.mktemp("frames")
    for png in sorted((shipped_data / "val").glob("*.png"))[:6]:
        shutil.copy(png, folder / png.name)
    return folder


def test_teacher_labels_are_its_predictions_and_are_cached(shipped_data, frames, tmp_path, monkeypatch):
    from edgeseg import load
    from edgeseg.training import pseudo_labels

    labels = label_space_of(CocoPanoptic(shipped_data, "val"))
    split = pseudo_labels.pseudo_label_split(SHIPPED, frames, labels, tmp_path / "cache", progress=False)
    assert len(split) == 6
    teacher = load(SHIPPED)
    found = 0
    for i in range(len(split)):
        sample = split.load_raw(i)
        expected = teacher.predict(sample.image, tasks="panoptic")
        # the stored label is exactly the teacher's panoptic output, ids and classes
        assert np.array_equal(sample.panoptic, expected.panoptic)
        assert [(s["id"], s["category_id"]) for s in sample.segments] == \
               [(s.id, s.category_id) for s in expected.segments]
        found += len(sample.segments)
    assert found >= 6  # the teacher finds segments on these images: the labels are not empty
    assert not (tmp_path / "cache.partial").exists()

    calls = []
    monkeypatch.setattr(pseudo_labels, "write_png", lambda *a, **k: calls.append(a))
    pseudo_labels.pseudo_label_split(SHIPPED, frames, labels, tmp_path / "cache", progress=False)
    assert calls == []  # same teacher, same images: reused
    monkeypatch.undo()
    extra = frames.parent / "frames_plus"
    shutil.copytree(frames, extra)
    shutil.copy(sorted((shipped_data / "val").glob("*.png"))[10], extra / "zz_new.png")
    again = pseudo_labels.pseudo_label_split(SHIPPED, extra, labels, tmp_path / "cache", progress=False)
    assert len(again) == 7  # another image list: labelled again
    assert read_id_png(tmp_path / "cache" / "panoptic_pseudo" / "000006.png").shape == (256, 256)


def test_unlabelled_folder_errors_name_the_problem(shipped_data, tmp_path):
    from edgeseg.training.pseudo_labels import pseudo_label_split

    labels = label_space_of(CocoPanoptic(shipped_data, "val"))
    with pytest.raises(ConfigError, match="not a folder"):
        pseudo_label_split(SHIPPED, tmp_path / "missing", labels, tmp_path / "cache", progress=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(ConfigError, match="holds no images"):
        pseudo_label_split(SHIPPED, tmp_path / "empty", labels, tmp_path / "cache", progress=False)
    with pytest.raises(ConfigError, match="unlabelled_fraction"):
        TrainConfig(unlabelled_fraction=1.0)


def test_distill_trains_on_labelled_and_teacher_labelled_images(tiny_data, frames, tmp_path):
    from edgeseg.training.trainer import train

    model_cfg = tiny_model_config()
    with pytest.raises(ConfigError, match="needs a teacher"):
        train(model_cfg, tiny_train_config(tiny_data, unlabelled=str(frames), steps=1), tmp_path / "no_teacher",
              progress=False)
    cfg = tiny_train_config(tiny_data, unlabelled=str(frames), unlabelled_fraction=0.5,
                            kd=DistillConfig(teacher=SHIPPED, num_points=256))
    metrics = train(model_cfg, cfg, tmp_path / "run", progress=False)
    assert metrics["finished"] and np.isfinite(metrics["pq"])
    from edgeseg.checkpoint import load_checkpoint

    record = next(h["unlabelled"] for h in load_checkpoint(tmp_path / "run" / "model.pt")["history"] if "unlabelled" in h)
    assert record["labelled"] == 8 and record["unlabelled"] == 6
    assert abs(record["unlabelled_share"] - 0.5) < 0.15
    assert record["teacher_segments_per_image"] > 0
    assert (tmp_path / "run" / "teacher_labels" / "panoptic_pseudo.json").is_file()
