"""Dataset readers: one class per source format, all producing :class:`VideoRecord`.

Formats (config string -> class, see :data:`READERS`):

* ``"davis"``  -- :class:`DavisReader`: DAVIS 2016 grey masks (Perazzi et al., CVPR 2016)
  and DAVIS 2017 palette annotations (Pont-Tuset et al., arXiv 2017), class labels from a CSV.
* ``"ytvis"``  -- :class:`YTVISReader`: YouTube-VIS JSON (Yang et al., ICCV 2019), and the
  per-image "CocoVID" variant of the same data used by mmtracking.
* ``"mots"``   -- :class:`MOTSReader`: KITTI-MOTS / MOTSChallenge instance txt
  (Voigtlaender et al., CVPR 2019).
* ``"video"``  -- :class:`VideoFileReader`: plain video files, no annotation.
* ``"frames"`` -- :class:`FramesReader`: folders of frame images, no annotation.

Every reader has a plain keyword constructor and the same four methods:
``list_videos()`` (cheap: directory listing or JSON only, called when the
workflow builds its DAG), ``sources(video)`` (files a rule depends on),
``categories()`` (class names; category id = index + 1) and
``read_video(video, frames_dir=None)`` which decodes every frame (so a corrupt
or truncated frame fails here, naming the file) and checks the annotation.
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from wsvis.io.images import FrameError, read_image, read_mask
from wsvis.io.paths import check_name
from wsvis.io.rle import decode_rle
from wsvis.io.store import atomic_file

__all__ = [
    "VideoRecord",
    "DavisReader",
    "YTVISReader",
    "MOTSReader",
    "VideoFileReader",
    "FramesReader",
    "READERS",
    "make_reader",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
]

#: Frame image file extensions recognised in frame folders (lower case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
#: Video file extensions recognised by :class:`VideoFileReader` (lower case).
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")


@dataclass
class VideoRecord:
    """One video as every reader returns it.

    Attributes:
        name: video name (a plain path component, see :func:`wsvis.io.paths.check_name`).
        images: T frame image paths, in temporal order.
        height, width: frame size in pixels (all frames share it).
        masks: ``None`` when the source has no annotation for this video; else a
            list of T entries, each an (H, W) uint16 instance-id map (0 =
            background) or ``None`` for a frame that is not annotated.
        instance_classes: instance id -> class name, for every id present in ``masks``.
        annotated: T booleans, True where the frame carries ground truth
            (a frame annotated with no object has an all-zero mask).
    """

    name: str
    images: list[str]
    height: int
    width: int
    masks: list[np.ndarray | None] | None = None
    instance_classes: dict[int, str] = field(default_factory=dict)
    annotated: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


# --------------------------------------------------------------------------- helpers


def _frame_key(path: Path) -> tuple:
    """Sort key: numeric stems by value (``9`` before ``10``), others by name."""
    stem = path.stem
    return (0, int(stem), stem) if stem.isdigit() else (1, 0, stem)


def _frame_files(folder: Path) -> list[Path]:
    """Frame images of ``folder`` in temporal order; ValueError if there are none."""
    try:
        files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    except OSError as exc:
        raise ValueError(f"{folder}: cannot list video folder ({exc})") from exc
    if not files:
        raise ValueError(f"{folder}: empty video folder (no {'/'.join(IMAGE_EXTENSIONS)} frames)")
    return sorted(files, key=_frame_key)


def _subdirs(folder: Path, what: str) -> list[str]:
    """Sorted names of the sub-folders of ``folder``, each checked as a name."""
    if not folder.is_dir():
        raise ValueError(f"{folder}: {what} folder does not exist")
    return sorted(check_name(p.name, "video") for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _select(names: list[str], videos: list[str] | None, root: object) -> list[str]:
    """Restrict ``names`` to the ``videos`` option (None = all)."""
    if videos is None:
        return names
    known = set(names)
    for v in videos:
        check_name(v, "video")
        if v not in known:
            raise ValueError(f"video {v!r} (option 'videos') is not in dataset {root}")
    return sorted(set(videos))


def _decode_frames(video: str, images: list[Path | str]) -> tuple[int, int]:
    """Decode every frame; return the common (H, W) in pixels.

    Raises:
        FrameError: a frame is missing, corrupt or truncated (names the file).
        ValueError: frames of different sizes (names video, frame index, both sizes).
    """
    size = None
    for t, path in enumerate(images):
        h, w = read_image(path).shape[:2]
        if size is None:
            size = (h, w)
        elif (h, w) != size:
            raise ValueError(
                f"video {video!r}: frame {t} ({path}) is {w}x{h} pixels but frame 0 is "
                f"{size[1]}x{size[0]} (all frames of a video must have the same size)"
            )
    if size is None:
        raise ValueError(f"video {video!r}: no frames")
    return size


def _check_classes(video: str, instance_classes: dict[int, str], categories: list[str], source: object) -> None:
    """Every instance class must be in ``categories`` (ValueError naming video, class, list)."""
    for iid, cls in sorted(instance_classes.items()):
        if cls not in categories:
            raise ValueError(
                f"video {video!r}: instance {iid} has class {cls!r} ({source}), which is not in the "
                f"class list {categories}"
            )


def _present_ids(masks: list[np.ndarray | None]) -> list[int]:
    ids: set[int] = set()
    for m in masks:
        if m is not None:
            ids.update(int(i) for i in np.unique(m) if i)
    return sorted(ids)


# --------------------------------------------------------------------------- DAVIS


class _Folders:
    """What the folder-per-video readers share: the selected videos under ``root``."""

    root: Path
    _videos: list[str]

    def _check_video(self, video: str) -> str:
        check_name(video, "video")
        if video not in self._videos:
            raise ValueError(f"video {video!r} is not in dataset {self.root}")
        return video

    def _nonempty_videos(self, frames_root: Path) -> list[str]:
        """The selected videos; ValueError naming a video folder under ``frames_root`` with no frame."""
        for v in self._videos:
            folder = frames_root / v
            if not any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir()):
                raise ValueError(f"{folder}: empty video folder (no frames)")
        return list(self._videos)


class DavisReader(_Folders):
    """DAVIS layout: ``JPEGImages/[<resolution>/]<video>/*.jpg`` + ``Annotations/[<resolution>/]<video>/*.png``.

    Sources: DAVIS 2016 (Perazzi et al., CVPR 2016: grey {0, 255} masks, one
    object per video) and DAVIS 2017 palette annotations (Pont-Tuset et al.,
    2017: palette PNG, pixel value = instance id). Masks and frames match by
    file stem. A video with no ``Annotations/<video>`` folder is
    inference-only (``masks`` None).

    Args:
        root: dataset folder.
        resolution: sub-folder under JPEGImages/Annotations (``"480p"``) or None.
        classes_csv: CSV of class labels, paths relative to the working
            directory. Columns ``video,class`` (per video: the class applies to
            every instance of the video) or ``video,instance_id,class`` (per
            instance). None: no labels (an annotated instance then has no class
            and :meth:`read_video` fails).
        classes: the class list (category id = index + 1); default sorted
            unique classes of the CSV.
        mask_type: ``"auto"`` (palette 'P' PNG -> ids, any other mode ->
            binary), ``"binary"`` (pixel > 127 -> instance 1), ``"palette"``
            (pixel value = instance id).
        videos: restrict to these video names.

    Raises:
        ValueError: unknown mask_type, missing CSV column, unknown video in ``videos``.
    """

    MASK_TYPES = ("auto", "binary", "palette")

    def __init__(
        self,
        root: str | os.PathLike,
        resolution: str | None = None,
        classes_csv: str | os.PathLike | None = None,
        classes: list[str] | None = None,
        mask_type: str = "auto",
        videos: list[str] | None = None,
    ) -> None:
        if mask_type not in self.MASK_TYPES:
            raise ValueError(f"mask_type {mask_type!r} is not one of {list(self.MASK_TYPES)}")
        self.root = Path(root)
        sub = (resolution,) if resolution else ()
        self.image_dir = self.root.joinpath("JPEGImages", *sub)
        self.annotation_dir = self.root.joinpath("Annotations", *sub)
        self.mask_type = mask_type
        self.classes_csv = Path(classes_csv) if classes_csv is not None else None
        self._video_class: dict[str, str] = {}
        self._instance_class: dict[tuple[str, int], str] = {}
        self._per_instance = False
        if self.classes_csv is not None:
            self._read_csv(self.classes_csv)
        csv_classes = sorted(set(self._video_class.values()) | set(self._instance_class.values()))
        self._classes = list(classes) if classes is not None else csv_classes
        self._videos = _select(_subdirs(self.image_dir, "DAVIS JPEGImages"), videos, self.root)

    def _read_csv(self, path: Path) -> None:
        import pandas as pd

        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except OSError as exc:
            raise ValueError(f"{path}: cannot read classes_csv ({exc})") from exc
        missing = {"video", "class"} - set(df.columns)
        if missing:
            raise ValueError(f"{path}: classes_csv lacks column(s) {sorted(missing)}; has {list(df.columns)}")
        self._per_instance = "instance_id" in df.columns
        for row in df.to_dict("records"):
            if self._per_instance:
                self._instance_class[(row["video"], int(row["instance_id"]))] = row["class"]
            else:
                self._video_class[row["video"]] = row["class"]

    def list_videos(self) -> list[str]:
        """Sorted video names (folders of JPEGImages); ValueError for an empty video folder."""
        return self._nonempty_videos(self.image_dir)

    def sources(self, video: str) -> list[str]:
        """The frame folder, the annotation folder (if any) and the classes CSV (if given)."""
        self._check_video(video)
        out = [str(self.image_dir / video)]
        if (self.annotation_dir / video).is_dir():
            out.append(str(self.annotation_dir / video))
        if self.classes_csv is not None:
            out.append(str(self.classes_csv))
        return out

    def categories(self) -> list[str]:
        """Class names in category-id order (id = index + 1)."""
        return list(self._classes)

    def _read_davis_mask(self, path: Path) -> np.ndarray:
        mask_type = self.mask_type
        if mask_type == "auto":
            try:
                with Image.open(path) as im:
                    mask_type = "palette" if im.mode == "P" else "binary"
            except OSError as exc:
                raise FrameError(f"{path}: cannot read mask ({exc})") from exc
        raw = read_mask(path)
        if mask_type == "binary":
            return (raw > 127).astype(np.uint16)
        return raw.astype(np.uint16)

    def _class_of(self, video: str, iid: int) -> str:
        cls = self._instance_class.get((video, iid)) if self._per_instance else self._video_class.get(video)
        if cls is None:
            where = f"classes_csv {self.classes_csv}" if self.classes_csv else "no classes_csv given"
            raise ValueError(f"video {video!r}: instance id {iid} has no class ({where}); class list {self._classes}")
        return cls

    def read_video(self, video: str, frames_dir: str | None = None) -> VideoRecord:
        """Decode and check one video (``frames_dir`` is unused: frames are files already).

        Returns:
            :class:`VideoRecord`; ``masks`` are (H, W) uint16 instance ids (DAVIS
            2016: 1 where the grey mask > 127), every frame annotated, or
            ``masks`` None when the video has no Annotations folder.

        Raises:
            FrameError: corrupt/truncated frame or unreadable mask (names the file).
            ValueError: empty folder, frames of different sizes, mask missing for a
                frame (names the missing path), mask size != frame size (names the
                mask), instance without a class, class not in :meth:`categories`.
        """
        self._check_video(video)
        images = _frame_files(self.image_dir / video)
        h, w = _decode_frames(video, images)
        ann = self.annotation_dir / video
        record = VideoRecord(video, [str(p) for p in images], h, w, None, {}, [False] * len(images))
        if not ann.is_dir():
            return record
        masks = []
        for img in images:
            mpath = ann / f"{img.stem}.png"
            if not mpath.is_file():
                raise ValueError(f"video {video!r}: mask missing for frame {img.name}: {mpath}")
            m = self._read_davis_mask(mpath)
            if m.shape != (h, w):
                raise ValueError(
                    f"{mpath}: mask is {m.shape[1]}x{m.shape[0]} pixels but the frames of video "
                    f"{video!r} are {w}x{h}"
                )
            masks.append(m)
        record.masks = masks
        record.annotated = [True] * len(images)
        record.instance_classes = {i: self._class_of(video, i) for i in _present_ids(masks)}
        _check_classes(video, record.instance_classes, self._classes, self.classes_csv)
        return record


# --------------------------------------------------------------------------- YouTube-VIS


class YTVISReader:
    """YouTube-VIS JSON (Yang et al., "Video Instance Segmentation", ICCV 2019).

    Native layout: ``videos[]`` with ``id``, ``file_names`` (relative to
    ``root``, ``<video>/<frame>.jpg``), ``annotations[]`` with ``video_id``,
    ``category_id`` and ``segmentations`` (one COCO RLE per frame: ``counts``
    an uncompressed list or a compressed string; or null where the object is
    absent), ``categories[]``. The per-image "CocoVID" variant (``images[]``
    with ``video_id``/``frame_id``, per-image ``annotations`` with
    ``instance_id`` and ``segmentation``, as in mmtracking) is converted on load.

    The video name is the first path component of its file names. Instance
    id = 1 + index of the annotation within the video, in JSON order (CocoVID:
    in sorted ``instance_id`` order). Where instances overlap, the later
    annotation overwrites the earlier one in the instance-id map. Category id =
    position in ``categories()`` + 1, ``categories()`` being the JSON's
    categories sorted by their id. A JSON without ``annotations`` (a test
    split) gives ``masks`` None; otherwise every frame is annotated.

    Args:
        root: folder the ``file_names`` are relative to.
        annotations: the JSON file.
        videos: restrict to these names.

    Raises:
        ValueError: unreadable JSON, a file name that is absolute or contains
            ``..``, a video name that is not a plain path component (``../x``),
            two JSON videos with the same folder, unknown video in ``videos``.
    """

    def __init__(self, root: str | os.PathLike, annotations: str | os.PathLike, videos: list[str] | None = None) -> None:
        self.root = Path(root)
        self.annotations = Path(annotations)
        try:
            data = json.loads(self.annotations.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.annotations}: cannot read YouTube-VIS JSON ({exc})") from exc
        if "images" in data and all("file_names" not in v for v in data.get("videos", [])):
            data = self._from_cocovid(data)
        cats = sorted(data.get("categories", []), key=lambda c: int(c["id"]))
        self._classes = [str(c["name"]) for c in cats]
        self._cat_name = {int(c["id"]): str(c["name"]) for c in cats}
        self._has_annotations = "annotations" in data
        self._by_name: dict[str, dict] = {}
        anns_by_vid: dict[int, list[dict]] = {}
        for ann in data.get("annotations", []):
            anns_by_vid.setdefault(int(ann["video_id"]), []).append(ann)
        for v in data.get("videos", []):
            files = list(v.get("file_names", []))
            if not files:
                raise ValueError(f"{self.annotations}: video id {v.get('id')} has no file_names")
            name = str(files[0]).replace("\\", "/").split("/")[0]
            try:
                check_name(name, "video")
            except ValueError as exc:
                raise ValueError(f"{self.annotations}: video id {v.get('id')}: {exc}") from exc
            for f in files:
                if Path(f).is_absolute() or ".." in Path(f).parts:
                    raise ValueError(f"{self.annotations}: file name {f!r} of video {name!r} leaves the root")
            if name in self._by_name:
                raise ValueError(f"{self.annotations}: two videos with the folder {name!r}")
            self._by_name[name] = {"video": v, "annotations": anns_by_vid.get(int(v["id"]), [])}
        self._videos = _select(sorted(self._by_name), videos, self.annotations)

    @staticmethod
    def _from_cocovid(data: dict) -> dict:
        """Convert per-image CocoVID annotations to native YouTube-VIS ones."""
        frames: dict[int, list[dict]] = {}
        for im in data["images"]:
            frames.setdefault(int(im["video_id"]), []).append(im)
        index: dict[int, tuple[int, int]] = {}  # image id -> (video id, frame position)
        videos = []
        for v in data.get("videos", []):
            ims = sorted(frames.get(int(v["id"]), []), key=lambda im: int(im.get("frame_id", 0)))
            for t, im in enumerate(ims):
                index[int(im["id"])] = (int(v["id"]), t)
            videos.append({**v, "file_names": [im["file_name"] for im in ims], "length": len(ims)})
        lengths = {int(v["id"]): v["length"] for v in videos}
        tracks: dict[tuple[int, int], dict] = {}
        for ann in data.get("annotations", []):
            vid, t = index[int(ann["image_id"])]
            key = (vid, int(ann.get("instance_id", ann["id"])))
            track = tracks.setdefault(
                key, {"video_id": vid, "category_id": ann["category_id"], "segmentations": [None] * lengths[vid]}
            )
            track["segmentations"][t] = ann.get("segmentation")
        out = {k: v for k, v in data.items() if k not in ("images", "annotations", "videos")}
        out["videos"] = videos
        if "annotations" in data:
            out["annotations"] = [tracks[k] for k in sorted(tracks)]
        return out

    def list_videos(self) -> list[str]:
        """Sorted video names (from the JSON only)."""
        return list(self._videos)

    def _check_video(self, video: str) -> dict:
        check_name(video, "video")
        if video not in self._videos:
            raise ValueError(f"video {video!r} is not in {self.annotations}")
        return self._by_name[video]

    def sources(self, video: str) -> list[str]:
        """The JSON file and the video's frame folder."""
        self._check_video(video)
        return [str(self.annotations), str(self.root / video)]

    def categories(self) -> list[str]:
        """Category names sorted by JSON category id (category id = index + 1)."""
        return list(self._classes)

    def read_video(self, video: str, frames_dir: str | None = None) -> VideoRecord:
        """Decode the frames and RLE masks of one video (``frames_dir`` unused).

        Returns:
            :class:`VideoRecord` with (H, W) uint16 instance-id maps (see class doc).

        Raises:
            FrameError: corrupt/truncated frame (names the file).
            ValueError: frames of different sizes; JSON width/height or RLE size
                different from the frames (names the JSON, video, frame);
                segmentations list length != number of frames; category id not
                in the JSON categories.
        """
        entry = self._check_video(video)
        v = entry["video"]
        images = [str(self.root / f) for f in v["file_names"]]
        h, w = _decode_frames(video, images)
        if "height" in v and "width" in v and (int(v["height"]), int(v["width"])) != (h, w):
            raise ValueError(
                f"{self.annotations}: video {video!r} is {v['width']}x{v['height']} in the JSON but its "
                f"frames are {w}x{h} pixels"
            )
        record = VideoRecord(video, images, h, w, None, {}, [False] * len(images))
        if not self._has_annotations:
            return record
        masks = [np.zeros((h, w), np.uint16) for _ in images]
        for k, ann in enumerate(entry["annotations"]):
            iid = k + 1
            cid = int(ann["category_id"])
            if cid not in self._cat_name:
                raise ValueError(
                    f"{self.annotations}: video {video!r} instance {iid} has category id {cid}, not in the "
                    f"class list {self._classes}"
                )
            segs = ann.get("segmentations") or []
            if len(segs) != len(images):
                raise ValueError(
                    f"{self.annotations}: video {video!r} instance {iid} has {len(segs)} segmentations "
                    f"for {len(images)} frames"
                )
            present = False
            for t, rle in enumerate(segs):
                if not rle:
                    continue
                size = tuple(int(s) for s in rle.get("size", (h, w)))
                if size != (h, w):
                    raise ValueError(
                        f"{self.annotations}: video {video!r} frame {t} instance {iid}: RLE size "
                        f"{size[1]}x{size[0]} != frame size {w}x{h}"
                    )
                m = decode_rle(rle, h, w).astype(bool)
                if m.any():
                    masks[t][m] = iid  # later annotations overwrite earlier ones on overlap
                    present = True
            if present:
                record.instance_classes[iid] = self._cat_name[cid]
        # an instance fully overwritten by later ones is absent from the maps
        present = set(_present_ids(masks))
        record.instance_classes = {i: c for i, c in record.instance_classes.items() if i in present}
        record.masks = masks
        record.annotated = [True] * len(images)
        _check_classes(video, record.instance_classes, self._classes, self.annotations)
        return record


# --------------------------------------------------------------------------- MOTS


class MOTSReader(_Folders):
    """KITTI-MOTS / MOTSChallenge instance txt (Voigtlaender et al., "MOTS", CVPR 2019).

    Layout: frames ``root/<seq>/<frame:06d>.png|jpg`` and annotations
    ``annotations/<seq>.txt`` with lines ``frame obj_id class_id img_h img_w rle``
    (rle: compressed COCO RLE string). The txt frame number is the image's
    numeric stem (KITTI-MOTS counts from 0, MOTSChallenge from 1). Object
    ids (``class_id * 1000 + k``) map to instance ids 1..K in sorted order
    within the sequence; class ``10`` lines are ignore regions, not instances.
    MOTS annotates every frame, so a frame without lines is annotated with no
    object. A sequence without a txt file has ``masks`` None.

    Args:
        root: folder of sequence folders.
        annotations: folder of ``<seq>.txt`` files.
        class_names: class id -> name (default ``{1: "car", 2: "pedestrian"}``);
            ``categories()`` lists them in class-id order.
        videos: restrict to these sequence names.
    """

    IGNORE_CLASS = 10

    def __init__(
        self,
        root: str | os.PathLike,
        annotations: str | os.PathLike,
        class_names: dict[int, str] | None = None,
        videos: list[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.annotations = Path(annotations)
        names = class_names if class_names is not None else {1: "car", 2: "pedestrian"}
        self.class_names = {int(k): str(v) for k, v in names.items()}
        self._videos = _select(_subdirs(self.root, "MOTS image"), videos, self.root)

    def list_videos(self) -> list[str]:
        """Sorted sequence names (folders of ``root``)."""
        return list(self._videos)

    def sources(self, video: str) -> list[str]:
        """The sequence's frame folder and its txt file (if it exists)."""
        self._check_video(video)
        txt = self.annotations / f"{video}.txt"
        return [str(self.root / video)] + ([str(txt)] if txt.is_file() else [])

    def categories(self) -> list[str]:
        """Class names in class-id order."""
        return [self.class_names[k] for k in sorted(self.class_names)]

    def read_video(self, video: str, frames_dir: str | None = None) -> VideoRecord:
        """Decode frames and RLE lines of one sequence (``frames_dir`` unused).

        Raises:
            FrameError: corrupt/truncated frame (names the file).
            ValueError: frames of different sizes; a malformed line, a line for a
                frame with no image, an image size in a line != the frame size
                (names the txt file and line); a class id without a name (names
                video, class id and the class list).
        """
        self._check_video(video)
        images = _frame_files(self.root / video)
        h, w = _decode_frames(video, images)
        record = VideoRecord(video, [str(p) for p in images], h, w, None, {}, [False] * len(images))
        txt = self.annotations / f"{video}.txt"
        if not txt.is_file():
            return record
        position = {int(p.stem): t for t, p in enumerate(images) if p.stem.isdigit()}
        rows = []
        for lineno, line in enumerate(txt.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split(" ", 5)
            where = f"{txt}:{lineno}"
            try:
                frame, obj, cls, ih, iw = (int(x) for x in parts[:5])
                rle = parts[5].strip()
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{where}: malformed MOTS line (want 'frame obj_id class_id h w rle')") from exc
            if cls == self.IGNORE_CLASS:
                continue
            if frame not in position:
                raise ValueError(f"{where}: frame {frame} has no image in {self.root / video}")
            if (ih, iw) != (h, w):
                raise ValueError(f"{where}: image size {iw}x{ih} != frame size {w}x{h} of video {video!r}")
            if cls not in self.class_names:
                raise ValueError(
                    f"video {video!r} ({where}): class id {cls} not in the class list {self.class_names}"
                )
            rows.append((position[frame], obj, cls, rle))
        ids = {obj: k + 1 for k, obj in enumerate(sorted({r[1] for r in rows}))}
        masks = [np.zeros((h, w), np.uint16) for _ in images]
        for t, obj, cls, rle in rows:
            m = decode_rle({"size": [h, w], "counts": rle}, h, w).astype(bool)
            masks[t][m] = ids[obj]
            record.instance_classes[ids[obj]] = self.class_names[cls]
        present = set(_present_ids(masks))
        record.instance_classes = {i: c for i, c in sorted(record.instance_classes.items()) if i in present}
        record.masks = masks
        record.annotated = [True] * len(images)
        _check_classes(video, record.instance_classes, self.categories(), txt)
        return record


# --------------------------------------------------------------------------- no annotation


class FramesReader(_Folders):
    """A folder of video folders of frame images (jpg/png), no annotation.

    Args:
        root: folder holding one sub-folder per video.
        classes: class list for weak labels given elsewhere (default []).
        videos: restrict to these names.
    """

    def __init__(self, root: str | os.PathLike, classes: list[str] | None = None, videos: list[str] | None = None) -> None:
        self.root = Path(root)
        self._classes = list(classes or [])
        self._videos = _select(_subdirs(self.root, "frames"), videos, self.root)

    def list_videos(self) -> list[str]:
        """Sorted video folder names; ValueError naming an empty video folder."""
        return self._nonempty_videos(self.root)

    def sources(self, video: str) -> list[str]:
        """The video's frame folder."""
        return [str(self.root / self._check_video(video))]

    def categories(self) -> list[str]:
        """The ``classes`` option."""
        return list(self._classes)

    def read_video(self, video: str, frames_dir: str | None = None) -> VideoRecord:
        """Decode every frame (names sorted numerically when numeric); ``masks`` None.

        Raises:
            FrameError: corrupt/truncated frame. ValueError: empty folder, frames
            of different sizes.
        """
        self._check_video(video)
        images = _frame_files(self.root / video)
        h, w = _decode_frames(video, images)
        return VideoRecord(video, [str(p) for p in images], h, w, None, {}, [False] * len(images))


class VideoFileReader:
    """Plain video files (.mp4 .avi .mov .mkv .webm), decoded with OpenCV; no annotation.

    Args:
        root: a video file or a folder of video files; video name = file stem.
        classes: class list for weak labels given elsewhere (default []).
        videos: restrict to these names.
        frame_format: ``"jpg"`` or ``"png"``, the format of the extracted frames.

    Raises:
        ValueError: root missing or not a video file, two files with the same
            stem, bad frame_format, unknown video in ``videos``.
    """

    FRAME_FORMATS = ("jpg", "png")

    def __init__(
        self,
        root: str | os.PathLike,
        classes: list[str] | None = None,
        videos: list[str] | None = None,
        frame_format: str = "jpg",
    ) -> None:
        if frame_format not in self.FRAME_FORMATS:
            raise ValueError(f"frame_format {frame_format!r} is not one of {list(self.FRAME_FORMATS)}")
        self.root = Path(root)
        self.frame_format = frame_format
        self._classes = list(classes or [])
        if self.root.is_file():
            files = [self.root]
        elif self.root.is_dir():
            files = sorted(p for p in self.root.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
        else:
            raise ValueError(f"{self.root}: video file or folder does not exist")
        self._files: dict[str, Path] = {}
        for f in files:
            if f.suffix.lower() not in VIDEO_EXTENSIONS:
                raise ValueError(f"{f}: not a video file (extensions {list(VIDEO_EXTENSIONS)})")
            name = check_name(f.stem, "video")
            if name in self._files:
                raise ValueError(f"{f} and {self._files[name]}: two video files named {name!r}")
            self._files[name] = f
        self._videos = _select(sorted(self._files), videos, self.root)

    def list_videos(self) -> list[str]:
        """Sorted video file stems."""
        return list(self._videos)

    def sources(self, video: str) -> list[str]:
        """The video file."""
        check_name(video, "video")
        if video not in self._videos:
            raise ValueError(f"video {video!r} is not in {self.root}")
        return [str(self._files[video])]

    def categories(self) -> list[str]:
        """The ``classes`` option."""
        return list(self._classes)

    def read_video(self, video: str, frames_dir: str | os.PathLike | None = None) -> VideoRecord:
        """Decode the video file and write its frames as ``frames_dir/00000.<frame_format>``, ...

        Each frame file is written atomically; frame files beyond the video's
        length (from an earlier extraction) are removed. ``masks`` None.

        Raises:
            ValueError: ``frames_dir`` None; the file yields no frame (corrupt or
                unsupported, names the file); frames of different sizes.
        """
        path = Path(self.sources(video)[0])
        if frames_dir is None:
            raise ValueError(f"video {video!r}: VideoFileReader.read_video needs frames_dir to write frames of {path}")
        out = Path(frames_dir)
        out.mkdir(parents=True, exist_ok=True)
        cap = cv2.VideoCapture(str(path))
        images: list[str] = []
        size = None
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                t = len(images)
                if size is None:
                    size = bgr.shape[:2]
                elif bgr.shape[:2] != size:
                    raise ValueError(
                        f"video {video!r} ({path}): frame {t} is {bgr.shape[1]}x{bgr.shape[0]} pixels but "
                        f"frame 0 is {size[1]}x{size[0]}"
                    )
                target = out / f"{t:05d}.{self.frame_format}"
                with atomic_file(target) as tmp:
                    if not cv2.imwrite(str(tmp), bgr):
                        raise ValueError(f"{target}: cannot write frame {t} of {path}")
                images.append(str(target))
        finally:
            cap.release()
        if size is None:
            raise FrameError(f"{path}: no frame could be decoded (corrupt or unsupported video file)")
        # Frames left by an earlier, longer extraction would otherwise look like part of this video.
        for stale in set(out.glob(f"*.{self.frame_format}")) - {Path(p) for p in images}:
            stale.unlink()
        return VideoRecord(video, images, int(size[0]), int(size[1]), None, {}, [False] * len(images))


# --------------------------------------------------------------------------- registry

#: Config string -> reader class.
READERS: dict[str, type] = {
    "davis": DavisReader,
    "ytvis": YTVISReader,
    "mots": MOTSReader,
    "video": VideoFileReader,
    "frames": FramesReader,
}


def make_reader(format: str, **options):
    """Build the reader for ``format`` (a key of :data:`READERS`) with keyword ``options``.

    Raises:
        ValueError: unknown format (names it and the choices) or an option the
            reader does not take (names the option).
    """
    if format not in READERS:
        raise ValueError(f"unknown dataset format {format!r}; choose one of {sorted(READERS)}")
    cls = READERS[format]
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as exc:
        raise ValueError(f"dataset format {format!r}: bad option ({exc})") from exc
    return cls(**options)
