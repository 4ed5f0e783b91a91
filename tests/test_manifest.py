"""Manifest table and YouTube-VIS ground truth: real DAVIS videos, parquet and RLE round trips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import shared
from wsvis.io.datasets import DavisReader, FramesReader, VideoRecord, YTVISReader
from wsvis.io.manifest import (
    ingest_video,
    load_gt_masks,
    mask_boxes,
    merge_manifest,
    read_manifest,
    read_video_table,
    video_gt,
    video_table,
)

COLUMNS = [
    "video", "frame", "image", "source_image", "width", "height", "source_width", "source_height", "split", "annotated", "tags",
    "instance_ids", "box_classes", "boxes",
]


def composites_reader(**kw) -> DavisReader:
    root = shared("davis_composites")
    return DavisReader(root=root, classes_csv=root / "instances.csv", **kw)


def composite_copy(tmp_path: Path, video: str, n: int) -> Path:
    """The first ``n`` frames of a composite video (frames, palette masks, instances.csv) in tmp_path."""
    src = shared("davis_composites")
    root = tmp_path / "composites"
    for sub, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
        (root / sub / video).mkdir(parents=True, exist_ok=True)
        for t in range(n):
            shutil.copy(src / sub / video / f"{t:05d}.{ext}", root / sub / video / f"{t:05d}.{ext}")
    shutil.copy(src / "instances.csv", root / "instances.csv")
    return root


@pytest.fixture(scope="module")
def blackswan() -> VideoRecord:
    root = shared("davis2016")
    return DavisReader(root=root, resolution="480p", classes_csv=root / "labels.csv", videos=["blackswan"]).read_video(
        "blackswan"
    )


def test_video_table_davis2016(blackswan):
    cats = ["bird", "car", "cow", "dog", "horse", "person"]
    df = video_table(blackswan, cats, "train")
    assert list(df.columns) == COLUMNS and len(df) == 50
    assert df["frame"].dtype == np.int64 and df["width"].dtype == np.int64 and df["height"].dtype == np.int64
    assert df["annotated"].dtype == bool and df["annotated"].all()
    assert (df["width"] == 854).all() and (df["height"] == 480).all() and (df["split"] == "train").all()
    assert df["frame"].tolist() == list(range(50))
    for t, row in df.iterrows():
        m = blackswan.masks[t] == 1
        if m.any():
            ys, xs = np.nonzero(m)
            assert row["tags"] == ["bird"] and row["box_classes"] == ["bird"] and row["instance_ids"] == [1]
            assert row["boxes"] == [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]
        else:
            assert row["tags"] == [] and row["boxes"] == [] and row["instance_ids"] == []


def test_box_convention_and_empty_instances():
    mask = np.zeros((3, 4), np.uint16)
    mask[0, 0] = 1
    assert mask_boxes(mask, [1]) == [[0.0, 0.0, 1.0, 1.0]]
    rec = VideoRecord("v", ["v/0.jpg", "v/1.jpg"], 3, 4, [mask, np.zeros((3, 4), np.uint16)], {1: "cat"}, [True, True])
    df = video_table(rec, ["cat"], "val")
    assert df.loc[0, "boxes"] == [[0.0, 0.0, 1.0, 1.0]] and df.loc[0, "tags"] == ["cat"]
    assert len(df.loc[1, "instance_ids"]) == 0 and bool(df.loc[1, "annotated"])
    gt = video_gt(rec, ["cat"])
    ann = gt["annotations"][0]
    assert ann["bboxes"] == [[0.0, 0.0, 1.0, 1.0], None] and ann["areas"] == [1, None]
    assert ann["segmentations"][1] is None and isinstance(ann["segmentations"][0]["counts"], str)


def test_class_not_in_categories():
    mask = np.ones((2, 2), np.uint16)
    rec = VideoRecord("v", ["v/0.jpg"], 2, 2, [mask], {1: "cat"}, [True])
    with pytest.raises(ValueError, match=r"'v'.*instance 1.*'cat'.*\['dog'\]"):
        video_table(rec, ["dog"], "train")
    with pytest.raises(ValueError, match=r"'v'.*instance 1.*'cat'"):
        video_gt(rec, ["dog"])


def test_gt_rle_round_trip():
    reader = composites_reader(videos=["two_cars"])
    rec = reader.read_video("two_cars")
    cats = reader.categories()
    gt = json.loads(json.dumps(video_gt(rec, cats)))  # through JSON, as on disk
    assert gt["length"] == 45 and gt["file_names"][0] == "two_cars/00000.jpg"
    masks, cat_ids = load_gt_masks(gt, "two_cars")
    assert masks.shape == (45, 2, 480, 854) and masks.dtype == bool
    assert cat_ids.tolist() == [cats.index("car") + 1] * 2
    for t in range(45):
        for k, iid in enumerate((1, 2)):
            np.testing.assert_array_equal(masks[t, k], rec.masks[t] == iid)


def test_ingest_merge_and_ytvis_round_trip(tmp_path):
    root = composite_copy(tmp_path, "blackswan_dog_horse", 4)
    composite_copy(tmp_path, "two_cars", 3)
    reader = DavisReader(root=root, classes_csv=root / "instances.csv")
    cats = reader.categories()
    out = tmp_path / "results"
    tables, gts = [], []
    for v in reversed(reader.list_videos()):
        ingest_video(reader, v, out / "tables" / f"{v}.parquet", out / "gt" / f"{v}.json", split="val")
        tables.append(out / "tables" / f"{v}.parquet")
        gts.append(out / "gt" / f"{v}.json")
    one = read_video_table(tables[0])  # parquet round trip, list columns included
    pd.testing.assert_frame_equal(one, video_table(reader.read_video("two_cars"), cats, "val"))
    merge_manifest(tables, gts, cats, out / "manifest.parquet", out / "gt.json")
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]

    df = read_manifest(out / "manifest.parquet")
    assert list(df.columns) == COLUMNS and len(df) == 7
    assert df["video"].tolist() == ["blackswan_dog_horse"] * 4 + ["two_cars"] * 3
    assert df["frame"].tolist() == [0, 1, 2, 3, 0, 1, 2]
    assert isinstance(df.loc[0, "boxes"], list) and isinstance(df.loc[0, "boxes"][0], list)
    assert df.loc[0, "tags"] == ["bird", "dog", "horse"] and df.loc[0, "instance_ids"] == [1, 2, 3]
    assert df.loc[4, "box_classes"] == ["car", "car"]

    gt = json.loads((out / "gt.json").read_text())
    assert [(v["id"], v["name"]) for v in gt["videos"]] == [(1, "blackswan_dog_horse"), (2, "two_cars")]
    assert [a["id"] for a in gt["annotations"]] == [1, 2, 3, 4, 5]
    assert [a["video_id"] for a in gt["annotations"]] == [1, 1, 1, 2, 2]
    assert gt["categories"] == [{"id": i + 1, "name": c} for i, c in enumerate(cats)]
    assert all(a["iscrowd"] == 0 and a["length"] == gt["videos"][a["video_id"] - 1]["length"] for a in gt["annotations"])

    # read gt.json back as a YouTube-VIS dataset: same masks and classes
    ytvis = YTVISReader(root=root / "JPEGImages", annotations=out / "gt.json")
    assert ytvis.list_videos() == ["blackswan_dog_horse", "two_cars"] and ytvis.categories() == cats
    for v in ytvis.list_videos():
        a, b = reader.read_video(v), ytvis.read_video(v)
        assert a.instance_classes == b.instance_classes and a.images == b.images
        for ma, mb in zip(a.masks, b.masks):
            np.testing.assert_array_equal(ma, mb)
        masks, _ = load_gt_masks(gt, v)
        assert masks.shape[:2] == (len(a.images), len(a.instance_classes))


def test_unannotated_videos_and_one_frame(tmp_path):
    src = shared("davis2016") / "JPEGImages" / "480p" / "dog"
    (tmp_path / "frames" / "solo").mkdir(parents=True)
    shutil.copy(src / "00000.jpg", tmp_path / "frames" / "solo" / "00000.jpg")
    reader = FramesReader(root=tmp_path / "frames", classes=["dog"])
    out = tmp_path / "out"
    ingest_video(reader, "solo", out / "solo.parquet", out / "solo.json", split="test")
    df = read_video_table(out / "solo.parquet")
    assert len(df) == 1 and not df.loc[0, "annotated"] and df.loc[0, "tags"] == [] and df.loc[0, "boxes"] == []
    merge_manifest([out / "solo.parquet"], [out / "solo.json"], ["dog"], out / "manifest.parquet", out / "gt.json")
    gt = json.loads((out / "gt.json").read_text())
    assert gt["annotations"] == [] and gt["videos"][0]["name"] == "solo" and gt["videos"][0]["length"] == 1
    assert read_manifest(out / "manifest.parquet")["split"].tolist() == ["test"]
    masks, cat_ids = load_gt_masks(gt, "solo")
    assert masks.shape == (1, 0, 480, 854) and cat_ids.shape == (0,)
    with pytest.raises(KeyError, match="'nosuch'"):
        load_gt_masks(gt, "nosuch")


def test_merge_mixed_annotated_and_unannotated(tmp_path):
    root = composite_copy(tmp_path, "two_cars", 2)
    composite_copy(tmp_path, "cows_dog", 1)
    shutil.rmtree(root / "Annotations" / "cows_dog")
    reader = DavisReader(root=root, classes_csv=root / "instances.csv")
    out = tmp_path / "out"
    for v in reader.list_videos():
        ingest_video(reader, v, out / f"{v}.parquet", out / f"{v}.json")
    names = reader.list_videos()
    merge_manifest(
        [out / f"{v}.parquet" for v in names], [out / f"{v}.json" for v in names], reader.categories(),
        out / "manifest.parquet", out / "gt.json",
    )
    gt = json.loads((out / "gt.json").read_text())
    assert [v["name"] for v in gt["videos"]] == ["cows_dog", "two_cars"]
    assert {a["video_id"] for a in gt["annotations"]} == {2}
    df = read_manifest(out / "manifest.parquet")
    assert df["annotated"].tolist() == [False, True, True]


def test_merge_rejects_inconsistent_inputs(tmp_path):
    mask = np.ones((2, 2), np.uint16)
    out = tmp_path
    for name in ("a", "b"):
        rec = VideoRecord(name, [f"{name}/0.jpg"], 2, 2, [mask], {1: "cat"}, [True])
        video_table(rec, ["cat"], "train").to_parquet(out / f"{name}.parquet")
        (out / f"{name}.json").write_text(json.dumps(video_gt(rec, ["cat"])))
    with pytest.raises(ValueError, match=r"only in tables \['b'\]"):
        merge_manifest([out / "a.parquet", out / "b.parquet"], [out / "a.json"], ["cat"], out / "m.parquet", out / "g.json")
    with pytest.raises(ValueError, match=r"'a'.*two tables"):
        merge_manifest([out / "a.parquet", out / "a.parquet"], [out / "a.json"], ["cat"], out / "m.parquet", out / "g.json")
    with pytest.raises(ValueError, match=r"a\.json.*category id 1.*\[\]"):
        merge_manifest([out / "a.parquet"], [out / "a.json"], [], out / "m.parquet", out / "g.json")
    assert not (out / "m.parquet").exists() and not (out / "g.json").exists()
    with pytest.raises(ValueError, match="no per-video tables"):
        merge_manifest([], [], ["cat"], out / "m.parquet", out / "g.json")
