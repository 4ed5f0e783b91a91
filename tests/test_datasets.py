"""Dataset readers on real DAVIS data, the YouTube-VIS fixture, and built MOTS / video files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_util

from conftest import shared
from wsvis.io.datasets import (
    READERS,
    DavisReader,
    FramesReader,
    MOTSReader,
    VideoFileReader,
    YTVISReader,
    make_reader,
)
from wsvis.io.images import FrameError, read_mask


def davis2016_reader(**kw) -> DavisReader:
    root = shared("davis2016")
    return DavisReader(root=root, resolution="480p", classes_csv=root / "labels.csv", **kw)


def composites_reader(**kw) -> DavisReader:
    root = shared("davis_composites")
    return DavisReader(root=root, classes_csv=root / "instances.csv", **kw)


def copy_davis(tmp_path: Path, video: str = "blackswan", n: int = 3, name: str | None = None) -> Path:
    """A small DAVIS 2016 copy in tmp_path: ``n`` frames of ``video`` (as ``name``) and its labels.csv."""
    src = shared("davis2016")
    name = name or video
    root = tmp_path / "davis"
    for sub, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
        out = root / sub / "480p" / name
        out.mkdir(parents=True, exist_ok=True)
        for t in range(n):
            shutil.copy(src / sub / "480p" / video / f"{t:05d}.{ext}", out / f"{t:05d}.{ext}")
    (root / "labels.csv").write_text(f"video,class\n{name},bird\n")
    return root


def small_reader(root: Path, **kw) -> DavisReader:
    return DavisReader(root=root, resolution="480p", classes_csv=root / "labels.csv", **kw)


# ------------------------------------------------------------------------ DAVIS 2016


def test_davis2016_lists_videos_and_classes():
    reader = davis2016_reader()
    videos = reader.list_videos()
    assert len(videos) == 8 and videos == sorted(videos) and "blackswan" in videos
    assert reader.categories() == ["bird", "car", "cow", "dog", "horse", "person"]
    src = reader.sources("blackswan")
    assert src[0].endswith("JPEGImages/480p/blackswan") and src[1].endswith("Annotations/480p/blackswan")


def test_davis2016_blackswan():
    rec = davis2016_reader(videos=["blackswan"]).read_video("blackswan")
    assert len(rec.images) == 50 and (rec.height, rec.width) == (480, 854)
    assert rec.instance_classes == {1: "bird"}
    assert all(rec.annotated)
    values = set(np.unique(np.stack(rec.masks)).tolist())
    assert values == {0, 1}
    assert all(m.dtype == np.uint16 and m.shape == (480, 854) for m in rec.masks)
    raw = read_mask(Path(rec.images[7].replace("JPEGImages", "Annotations")).with_suffix(".png"))
    np.testing.assert_array_equal(rec.masks[7], (raw > 127).astype(np.uint16))


def test_davis_videos_subset_and_unknown_video():
    reader = davis2016_reader(videos=["dog", "blackswan"])
    assert reader.list_videos() == ["blackswan", "dog"]
    with pytest.raises(ValueError, match=r"'nosuch'.*davis2016"):
        davis2016_reader(videos=["nosuch"])
    with pytest.raises(ValueError, match="not a plain path component"):
        davis2016_reader(videos=["../x"])


# ------------------------------------------------------------------------ DAVIS 2017-style composites


def test_composites_instances_and_classes():
    reader = composites_reader()
    assert reader.list_videos() == ["blackswan_dog_horse", "breakdance_bmx", "cows_dog", "two_cars"]
    rec = reader.read_video("two_cars")
    assert len(rec.images) == 45
    assert rec.instance_classes == {1: "car", 2: "car"}
    assert set(np.unique(np.stack(rec.masks)).tolist()) == {0, 1, 2}


def test_composites_three_instances_and_occlusion():
    rec = composites_reader(videos=["blackswan_dog_horse"]).read_video("blackswan_dog_horse")
    assert rec.instance_classes == {1: "bird", 2: "dog", 3: "horse"}
    assert set(np.unique(np.stack(rec.masks)).tolist()) == {0, 1, 2, 3}
    # instance 1 is the background sequence's own object (blackswan, unscaled): the composite
    # mask is the original minus what the pasted instances cover.
    orig_root = shared("davis2016") / "Annotations" / "480p" / "blackswan"
    for t in range(0, 50, 5):
        orig = read_mask(orig_root / f"{t:05d}.png") > 127
        inst1 = rec.masks[t] == 1
        assert not (inst1 & ~orig).any()
        np.testing.assert_array_equal(orig & ~inst1, orig & (rec.masks[t] > 1))


def test_composites_two_cars_occlusion():
    rec = composites_reader(videos=["two_cars"]).read_video("two_cars")
    orig_root = shared("davis2016") / "Annotations" / "480p" / "car-roundabout"
    covered = []
    for t in range(len(rec.images)):
        orig = read_mask(orig_root / f"{t:05d}.png") > 127
        inst1 = rec.masks[t] == 1
        assert not (inst1 & ~orig).any()  # never grows
        covered.append(int((orig & (rec.masks[t] == 2)).sum()))
    assert max(covered) > 0  # the pasted car occludes the first somewhere


def test_davis_palette_and_binary_mask_types(tmp_path):
    root = copy_davis(tmp_path, n=1)
    rec = small_reader(root, mask_type="palette").read_video("blackswan")
    assert set(np.unique(rec.masks[0]).tolist()) == {0, 255}  # grey values taken as ids
    with pytest.raises(ValueError, match="mask_type 'rgb'"):
        small_reader(root, mask_type="rgb")


# ------------------------------------------------------------------------ bad input


def test_corrupt_jpeg(tmp_path):
    root = copy_davis(tmp_path)
    bad = root / "JPEGImages" / "480p" / "blackswan" / "00001.jpg"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(FrameError, match="00001.jpg"):
        small_reader(root).read_video("blackswan")


def test_truncated_jpeg(tmp_path):
    root = copy_davis(tmp_path)
    bad = root / "JPEGImages" / "480p" / "blackswan" / "00002.jpg"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(FrameError, match="00002.jpg.*truncated"):
        small_reader(root).read_video("blackswan")


def test_missing_mask(tmp_path):
    root = copy_davis(tmp_path)
    (root / "Annotations" / "480p" / "blackswan" / "00001.png").unlink()
    with pytest.raises(ValueError, match=r"blackswan.*00001\.png"):
        small_reader(root).read_video("blackswan")


def test_mask_size_differs(tmp_path):
    root = copy_davis(tmp_path)
    Image.new("L", (10, 10)).save(root / "Annotations" / "480p" / "blackswan" / "00001.png")
    with pytest.raises(ValueError, match=r"00001\.png.*10x10"):
        small_reader(root).read_video("blackswan")


def test_frames_of_different_sizes(tmp_path):
    root = copy_davis(tmp_path)
    path = root / "JPEGImages" / "480p" / "blackswan" / "00002.jpg"
    img = cv2.imread(str(path))
    cv2.imwrite(str(path), img[:240, :400])
    with pytest.raises(ValueError, match=r"'blackswan'.*frame 2.*400x240.*854x480"):
        small_reader(root).read_video("blackswan")


def test_one_frame_video_is_valid(tmp_path):
    root = copy_davis(tmp_path, n=1)
    rec = small_reader(root).read_video("blackswan")
    assert len(rec.images) == 1 and len(rec.masks) == 1 and rec.annotated == [True]


def test_empty_video_folder(tmp_path):
    root = copy_davis(tmp_path, n=1)
    (root / "JPEGImages" / "480p" / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty.*empty video folder"):
        small_reader(root).list_videos()
    with pytest.raises(ValueError, match=r"empty.*empty video folder"):
        small_reader(root).read_video("empty")


def test_class_missing_from_class_list(tmp_path):
    root = copy_davis(tmp_path, n=1)
    with pytest.raises(ValueError, match=r"'blackswan'.*'bird'.*\['dog'\]"):
        small_reader(root, classes=["dog"]).read_video("blackswan")


def test_instance_without_class(tmp_path):
    root = copy_davis(tmp_path, n=1)
    (root / "labels.csv").write_text("video,instance_id,class\nblackswan,2,bird\n")
    with pytest.raises(ValueError, match=r"'blackswan'.*instance id 1.*labels\.csv"):
        small_reader(root).read_video("blackswan")


def test_video_without_annotations_is_inference_only(tmp_path):
    root = copy_davis(tmp_path, n=2)
    shutil.rmtree(root / "Annotations" / "480p" / "blackswan")
    reader = small_reader(root)
    rec = reader.read_video("blackswan")
    assert rec.masks is None and rec.annotated == [False, False]
    assert len(reader.sources("blackswan")) == 2  # frames folder + csv


# ------------------------------------------------------------------------ YouTube-VIS


def ytvis_fixture() -> Path:
    return shared("fixtures", "mot15_and_ytvis", "demo_vis_data", "ann.json")


def test_ytvis_real_fixture(tmp_path):
    ann = ytvis_fixture()
    # the fixture ships no images: build one frame of the right size (720x1280) from a real frame
    frame = cv2.imread(str(shared("davis2016") / "JPEGImages" / "480p" / "cows" / "00000.jpg"))
    (tmp_path / "0043f083b5").mkdir()
    cv2.imwrite(str(tmp_path / "0043f083b5" / "00000.jpg"), cv2.resize(frame, (1280, 720)))
    reader = YTVISReader(root=tmp_path, annotations=ann)
    assert reader.list_videos() == ["0043f083b5"] and reader.categories() == ["sedan"]
    assert reader.sources("0043f083b5") == [str(ann), str(tmp_path / "0043f083b5")]
    rec = reader.read_video("0043f083b5")
    assert (rec.height, rec.width) == (720, 1280) and len(rec.images) == 1
    assert rec.instance_classes == {1: "sedan"}
    data = json.loads(ann.read_text())
    a = data["annotations"][0]
    m = rec.masks[0] == 1
    assert int(m.sum()) == a["area"]
    ys, xs = np.nonzero(m)
    x, y, w, h = a["bbox"]
    assert (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()) == (x, y, w, h)


def test_ytvis_fixture_size_mismatch(tmp_path):
    (tmp_path / "0043f083b5").mkdir()
    cv2.imwrite(str(tmp_path / "0043f083b5" / "00000.jpg"), np.zeros((72, 128, 3), np.uint8))
    with pytest.raises(ValueError, match=r"ann\.json.*'0043f083b5'.*1280x720.*128x72"):
        YTVISReader(root=tmp_path, annotations=ytvis_fixture()).read_video("0043f083b5")


def _tiny_ytvis(tmp_path: Path, folder: str, category_id: int = 1) -> Path:
    (tmp_path / "v").mkdir(exist_ok=True)
    cv2.imwrite(str(tmp_path / "v" / "00000.jpg"), np.zeros((4, 6, 3), np.uint8))
    m = np.zeros((4, 6), np.uint8)
    m[1:3, 2:5] = 1
    rle = mask_util.encode(np.asfortranarray(m))
    data = {
        "videos": [{"id": 1, "width": 6, "height": 4, "length": 1, "file_names": [f"{folder}/00000.jpg"]}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [
            {"video_id": 1, "category_id": category_id, "segmentations": [{"size": [4, 6], "counts": rle["counts"].decode()}]}
        ],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path


def test_ytvis_compressed_rle(tmp_path):
    rec = YTVISReader(root=tmp_path, annotations=_tiny_ytvis(tmp_path, "v")).read_video("v")
    assert rec.instance_classes == {1: "cat"} and int((rec.masks[0] == 1).sum()) == 6


def test_ytvis_rejects_escaping_name(tmp_path):
    with pytest.raises(ValueError, match=r"ann\.json.*'\.\.'"):
        YTVISReader(root=tmp_path, annotations=_tiny_ytvis(tmp_path, "../x"))


def test_ytvis_unknown_category(tmp_path):
    reader = YTVISReader(root=tmp_path, annotations=_tiny_ytvis(tmp_path, "v", category_id=7))
    with pytest.raises(ValueError, match=r"'v'.*category id 7.*\['cat'\]"):
        reader.read_video("v")


# ------------------------------------------------------------------------ MOTS


def test_mots_round_trip(tmp_path):
    src = shared("davis_composites")
    n = 3
    seq = tmp_path / "images" / "0002"
    seq.mkdir(parents=True)
    masks = []
    for t in range(n):
        shutil.copy(src / "JPEGImages" / "two_cars" / f"{t:05d}.jpg", seq / f"{t:06d}.jpg")
        masks.append(read_mask(src / "Annotations" / "two_cars" / f"{t:05d}.png"))
    shutil.copy(src / "JPEGImages" / "two_cars" / f"{n:05d}.jpg", seq / f"{n:06d}.jpg")  # frame with no lines
    h, w = masks[0].shape
    lines = []
    for t, m in enumerate(masks):
        for iid in (1, 2):
            if (m == iid).any():
                rle = mask_util.encode(np.asfortranarray((m == iid).astype(np.uint8)))["counts"].decode()
                lines.append(f"{t} {1000 + 5 * iid} 1 {h} {w} {rle}")
        ignore = np.zeros((h, w), np.uint8)
        ignore[:10, :10] = 1
        rle = mask_util.encode(np.asfortranarray(ignore))["counts"].decode()
        lines.append(f"{t} 10000 10 {h} {w} {rle}")
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "0002.txt").write_text("\n".join(lines) + "\n")
    reader = MOTSReader(root=tmp_path / "images", annotations=tmp_path / "ann")
    assert reader.list_videos() == ["0002"] and reader.categories() == ["car", "pedestrian"]
    rec = reader.read_video("0002")
    assert rec.instance_classes == {1: "car", 2: "car"}
    assert rec.annotated == [True] * (n + 1)
    for t in range(n):
        np.testing.assert_array_equal(rec.masks[t], masks[t].astype(np.uint16))
    assert not rec.masks[n].any()


def test_mots_unknown_class_and_size(tmp_path):
    seq = tmp_path / "images" / "s"
    seq.mkdir(parents=True)
    cv2.imwrite(str(seq / "000000.png"), np.zeros((4, 6, 3), np.uint8))
    (tmp_path / "ann").mkdir()
    rle = mask_util.encode(np.asfortranarray(np.ones((4, 6), np.uint8)))["counts"].decode()
    (tmp_path / "ann" / "s.txt").write_text(f"0 3001 3 4 6 {rle}\n")
    with pytest.raises(ValueError, match=r"'s'.*class id 3"):
        MOTSReader(root=tmp_path / "images", annotations=tmp_path / "ann").read_video("s")
    (tmp_path / "ann" / "s.txt").write_text(f"0 1001 1 8 6 {rle}\n")
    with pytest.raises(ValueError, match=r"s\.txt:1.*6x8"):
        MOTSReader(root=tmp_path / "images", annotations=tmp_path / "ann").read_video("s")


# ------------------------------------------------------------------------ video files and frames


def test_video_file_reader(tmp_path):
    src = shared("davis2016") / "JPEGImages" / "480p" / "dog"
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 96))
    for t in range(3):
        writer.write(cv2.resize(cv2.imread(str(src / f"{t:05d}.jpg")), (160, 96)))
    writer.release()
    for root in (path, tmp_path):
        reader = VideoFileReader(root=root, classes=["dog"])
        assert reader.list_videos() == ["clip"] and reader.categories() == ["dog"]
        assert reader.sources("clip") == [str(path)]
    with pytest.raises(ValueError, match="frames_dir"):
        reader.read_video("clip")
    rec = reader.read_video("clip", frames_dir=str(tmp_path / "frames"))
    assert len(rec.images) == 3 and (rec.height, rec.width) == (96, 160) and rec.masks is None
    assert [Path(p).name for p in rec.images] == ["00000.jpg", "00001.jpg", "00002.jpg"]
    assert all(Path(p).is_file() for p in rec.images)
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["00000.jpg", "00001.jpg", "00002.jpg"]


def test_frames_reader(tmp_path):
    src = shared("davis2016") / "JPEGImages" / "480p" / "dog"
    for name, n in (("a", 2), ("b", 1)):
        (tmp_path / name).mkdir()
        for t in range(n):
            shutil.copy(src / f"{t:05d}.jpg", tmp_path / name / f"{t}.jpg")
    reader = FramesReader(root=tmp_path)
    assert reader.list_videos() == ["a", "b"] and reader.categories() == []
    rec = reader.read_video("a")
    assert len(rec.images) == 2 and rec.masks is None and rec.annotated == [False, False]
    assert reader.read_video("b").images == [str(tmp_path / "b" / "0.jpg")]


# ------------------------------------------------------------------------ registry


def test_registry_and_make_reader(tmp_path):
    assert set(READERS) == {"davis", "ytvis", "mots", "video", "frames"}
    root = shared("davis2016")
    reader = make_reader("davis", root=root, resolution="480p", classes_csv=root / "labels.csv")
    assert isinstance(reader, DavisReader)
    with pytest.raises(ValueError, match=r"'coco'.*davis.*ytvis"):
        make_reader("coco", root=root)
    with pytest.raises(ValueError, match="'davis'.*resolutoin"):
        make_reader("davis", root=root, resolutoin="480p")
