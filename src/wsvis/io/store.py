"""Zarr artifacts: atomic writes, completeness marker, typed attrs.

Every dense per-pixel artifact of the workflow (flow, depth, CAM, pseudo-labels,
predictions) is a Zarr v3 group on local disk, laid out as ``../shared/DESIGN.md``
("Artifacts") says. This module is the one place that knows how such a group
is written and opened:

* a writer fills a temporary sibling directory (``.<name>.tmp-<pid>-<hex>``) and
  renames it onto the final path only after every array is written and the
  group attribute ``complete`` is set, so a killed job never leaves a
  directory at the final path that opens as complete;
* :func:`open_artifact` refuses a group that lacks the ``complete`` marker, or
  whose ``stage`` differs from the one the caller expects;
* every group carries ``wsvis_version``, ``stage``, the stage's ``params``,
  ``frame_size`` (H, W in pixels) and ``units``;
* :class:`BackgroundWriter` casts, compresses and writes frames in a second
  thread while the caller computes the next ones (written in line, the
  flow stage's cast and write cost about half of DIS's own time, see
  ``benchmarks/flow_speed.py``);
* readers (:func:`open_artifact`, :func:`describe`) hide the
  ``.snakemake_timestamp`` marker that Snakemake writes inside directory
  outputs, which zarr would otherwise warn about on every listing of the
  group's members.

Arrays are chunked one frame per chunk (``(1, *frame_shape)``) and compressed
with :data:`DEFAULT_COMPRESSOR` unless the caller names another one from
:data:`COMPRESSORS`; ``benchmarks/zarr_compressors.py`` measured the choice.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle, ZstdCodec
from zarr.storage import LocalStore

from wsvis import __version__

__all__ = [
    "COMPRESSORS",
    "DEFAULT_COMPRESSOR",
    "ArtifactError",
    "ArtifactWriter",
    "BackgroundWriter",
    "atomic_file",
    "open_artifact",
    "describe",
]


class ArtifactError(RuntimeError):
    """An artifact is missing, half-written, or from another stage."""


def _blosc(cname: str, clevel: int) -> BloscCodec:
    return BloscCodec(cname=cname, clevel=clevel, shuffle=BloscShuffle.shuffle)


#: Compressor candidates by name (``benchmarks/zarr_compressors.py`` compares
#: them on real DAVIS flow). Values are factories so every array gets its own
#: codec instance.
COMPRESSORS: dict[str, Any] = {
    "blosc-zstd": lambda: _blosc("zstd", 3),
    "blosc-zstd-9": lambda: _blosc("zstd", 9),
    "blosc-lz4": lambda: _blosc("lz4", 5),
    "zstd": lambda: ZstdCodec(level=3),
    "none": lambda: None,
}

#: Chosen by ``benchmarks/zarr_compressors.py`` on DAVIS 480p DIS flow:
#: Blosc/Zstd level 3 with byte shuffle stores float16 flow in less space than
#: plain Zstd or Blosc/LZ4 at a write speed far above flow computation.
DEFAULT_COMPRESSOR = "blosc-zstd"


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


def _remove_stale_temporaries(path: Path) -> None:
    """Remove temporary siblings left by a killed writer of ``path``.

    Snakemake runs one job per output, so any temporary sibling that exists
    when a new writer starts belongs to a dead writer.
    """
    if not path.parent.is_dir():
        return
    for stale in path.parent.glob(_tmp_prefix(path) + "*"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)


def _replace(tmp: Path, path: Path) -> None:
    """Move ``tmp`` onto ``path``; an existing ``path`` is removed first.

    ``os.replace`` is atomic for files and for a directory onto a missing or
    empty directory; an old non-empty artifact is first renamed aside (an
    atomic step too), so at every instant ``path`` is absent, the old
    complete artifact, or the new complete one.
    """
    if path.exists() or path.is_symlink():
        trash = path.parent / f"{_tmp_prefix(path)}old-{uuid.uuid4().hex}"
        os.replace(path, trash)
        os.replace(tmp, path)
        shutil.rmtree(trash, ignore_errors=True) if trash.is_dir() else trash.unlink(missing_ok=True)
    else:
        os.replace(tmp, path)


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path to write; rename it onto ``path`` on success.

    Used for the non-Zarr artifacts (parquet tables, JSON, PNG) so that they
    too are either absent or complete. On an exception the temporary file is
    deleted and the exception propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{_tmp_prefix(path)}{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}"
    try:
        yield tmp
        if not tmp.exists():
            raise ArtifactError(f"{path}: the writer produced no file")
        _replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    """Round-trip ``value`` through JSON so attrs hold only plain types."""
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


class ArtifactWriter:
    """Write one Zarr group atomically.

    Use as a context manager::

        with ArtifactWriter(out, stage="flow", params=cfg, frame_size=(H, W),
                            units={"forward": "pixels"}) as w:
            fwd = w.create_array("gap_1/forward", shape=(T - 1, H, W, 2), dtype="float16")
            for t in range(T - 1):
                fwd[t] = flow_t

    Args:
        path: final location of the group (e.g. ``results/demo/flow/dog.zarr``).
        stage: name of the producing stage, stored in attrs and checked by
            :func:`open_artifact`.
        params: the stage's config section (stored as attrs ``params``).
        frame_size: source frame size ``(H, W)`` in pixels.
        units: map from array name to its unit (``"pixels"``, ``"relative inverse depth"``...).
        attrs: further group attributes (JSON-serialisable).
        compressor: a key of :data:`COMPRESSORS`.

    Raises:
        KeyError: unknown ``compressor``.

    On normal exit the group gets ``complete = True`` and is renamed onto
    ``path`` (replacing an older artifact). On an exception the temporary
    directory is deleted and nothing at ``path`` changes.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        stage: str,
        params: dict | None = None,
        frame_size: tuple[int, int] | None = None,
        units: dict[str, str] | None = None,
        attrs: dict | None = None,
        compressor: str = DEFAULT_COMPRESSOR,
    ) -> None:
        if compressor not in COMPRESSORS:
            raise KeyError(f"unknown compressor {compressor!r}; choose one of {sorted(COMPRESSORS)}")
        self.path = Path(path)
        self.compressor = compressor
        self._attrs = {
            "wsvis_version": __version__,
            "stage": stage,
            "params": _jsonable(params or {}),
            "frame_size": list(frame_size) if frame_size is not None else None,
            "units": dict(units or {}),
            "compressor": compressor,
            **_jsonable(attrs or {}),
        }
        self.tmp: Path | None = None
        self.group: zarr.Group | None = None

    def __enter__(self) -> "ArtifactWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(self.path)
        self.tmp = self.path.parent / f"{_tmp_prefix(self.path)}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.group = zarr.open_group(str(self.tmp), mode="w")
        self.group.attrs.update({**self._attrs, "complete": False})
        return self

    def create_array(
        self,
        name: str,
        *,
        shape: tuple[int, ...],
        dtype: Any,
        chunks: tuple[int, ...] | None = None,
        fill_value: Any = 0,
        attrs: dict | None = None,
    ) -> zarr.Array:
        """Create array ``name`` (``"a"`` or ``"sub/a"``) chunked one frame per chunk.

        ``chunks`` defaults to ``(1, *shape[1:])``. A zero-length first axis
        (a video of one frame has no flow pairs) is allowed.
        """
        assert self.group is not None, "use ArtifactWriter as a context manager"
        if chunks is None:
            chunks = (1, *shape[1:]) if len(shape) > 1 else (max(1, shape[0]),)
        chunks = tuple(max(1, c) for c in chunks)
        codec = COMPRESSORS[self.compressor]()
        arr = self.group.create_array(
            name,
            shape=shape,
            dtype=dtype,
            chunks=chunks,
            fill_value=fill_value,
            compressors=None if codec is None else [codec],
        )
        if attrs:
            arr.attrs.update(_jsonable(attrs))
        return arr

    def write_array(self, name: str, data: np.ndarray, **kwargs: Any) -> zarr.Array:
        """Create array ``name`` and fill it with ``data`` in one call."""
        data = np.asarray(data)
        arr = self.create_array(name, shape=data.shape, dtype=data.dtype, **kwargs)
        if data.size:
            arr[...] = data
        return arr

    def update_attrs(self, attrs: dict) -> None:
        """Add group attributes after creation (e.g. counts known only at the end)."""
        assert self.group is not None
        self.group.attrs.update(_jsonable(attrs))

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self.tmp is not None and self.group is not None
        if exc_type is None:
            self.group.attrs["complete"] = True
            _replace(self.tmp, self.path)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return False


_STOP = object()


def _write(array: zarr.Array, index: Any, value: np.ndarray) -> None:
    array[index] = np.asarray(value, dtype=array.dtype)


class BackgroundWriter:
    """Write array regions in one background thread while the caller computes the next ones.

    Use inside an :class:`ArtifactWriter`, entered after it so that it exits
    (and joins its thread) before the group is renamed or deleted::

        with ArtifactWriter(out, stage="flow", ...) as w, BackgroundWriter(maxsize=4) as bg:
            fwd = w.create_array("gap_1/forward", shape=(T - 1, H, W, 2), dtype="float16")
            for t in range(T - 1):
                bg.put(fwd, t, flow_t)  # (H, W, 2) float32, cast to float16 in the writer

    The overlap is real parallelism, not just reordering: OpenCV, numpy's
    casts and the Blosc/Zstd codecs release the GIL, so the writer's cast and
    compression run on a second core while the caller is inside e.g. DIS.
    Writes run in ``put`` order, one at a time.

    Args:
        maxsize: writes that may wait in the queue (each keeps its ``value``
            in memory); ``put`` blocks while the queue is full. ``0`` writes
            synchronously in the calling thread and starts no thread.

    Raises:
        ValueError: ``maxsize < 0``.

    Errors: an exception raised by a write is re-raised in the calling thread
    by the next :meth:`put` or, at the latest, when the ``with`` block ends
    (with a note naming the array and index); the writes after it are
    skipped. So an enclosing :class:`ArtifactWriter` sees the exception and
    deletes its temporary directory: no complete-looking artifact remains.
    When the ``with`` block ends with an exception, pending writes are
    dropped.
    """

    def __init__(self, maxsize: int = 4) -> None:
        if maxsize < 0:
            raise ValueError(f"BackgroundWriter: maxsize must be >= 0, got {maxsize}")
        self.maxsize = int(maxsize)
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._abort = False

    def __enter__(self) -> "BackgroundWriter":
        if self.maxsize > 0:
            self._queue = queue.Queue(self.maxsize)
            self._thread = threading.Thread(target=self._run, name="wsvis-zarr-writer", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            # after a failure keep draining, so that a put() blocked on a full queue wakes up
            if self._error is not None or self._abort:
                continue
            array, index, value = item
            try:
                _write(array, index, value)
            except BaseException as exc:  # re-raised in the caller's thread
                exc.add_note(f"raised in the background Zarr writer writing {array.path}[{index!r}]")
                self._error = exc

    def put(self, array: zarr.Array, index: Any, value: np.ndarray) -> None:
        """Queue ``array[index] = value`` (cast to ``array.dtype``); do not modify ``value`` afterwards.

        Raises:
            BaseException: the exception of an earlier failed write.
        """
        if self._error is not None:
            raise self._error
        if self._queue is None:
            _write(array, index, value)
        else:
            self._queue.put((array, index, value))

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._thread is not None:
            assert self._queue is not None
            self._abort = exc_type is not None
            self._queue.put(_STOP)
            self._thread.join()
        if exc_type is None and self._error is not None:
            raise self._error
        return False


#: Files that other tools put inside an artifact directory and zarr must not
#: see: Snakemake's marker of a ``directory()`` output.
_FOREIGN_FILES = frozenset({".snakemake_timestamp"})


class _ArtifactStore(LocalStore):
    """A local Zarr store whose root listing hides :data:`_FOREIGN_FILES`.

    zarr lists a group's directory to find its members and warns
    (``ZarrUserWarning: Object at .snakemake_timestamp is not recognized as a
    component of a Zarr hierarchy``) on each file that is neither an array
    nor a group. Hiding exactly these names at the root keeps every other
    stray file visible to zarr's check.
    """

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        async for key in super().list_dir(prefix):
            if prefix.strip("/") or key not in _FOREIGN_FILES:
                yield key


def _open_read(path: Path) -> zarr.Group:
    """Open the group at ``path`` read-only, blind to :data:`_FOREIGN_FILES`."""
    return zarr.open_group(store=_ArtifactStore(path, read_only=True), mode="r")


def open_artifact(path: str | os.PathLike, stage: str | None = None) -> zarr.Group:
    """Open a complete artifact group read-only.

    Args:
        path: the group's directory.
        stage: if given, the ``stage`` attribute it must carry.

    Returns:
        The read-only :class:`zarr.Group`.

    Raises:
        ArtifactError: the path is missing, is a temporary sibling, is not a
            Zarr group, lacks ``complete = True`` (a half-written or killed
            writer), or was written by another stage.
    """
    path = Path(path)
    if ".tmp-" in path.name:
        raise ArtifactError(f"{path}: a temporary artifact of an unfinished writer, not a result")
    if not path.is_dir():
        raise ArtifactError(f"{path}: no such artifact (run the stage that writes it first)")
    try:
        group = _open_read(path)
    except Exception as exc:  # zarr raises several types for a non-group
        raise ArtifactError(f"{path}: not a Zarr group ({exc})") from exc
    if group.attrs.get("complete") is not True:
        raise ArtifactError(f"{path}: incomplete artifact (its writer did not finish); rerun its stage")
    if stage is not None and group.attrs.get("stage") != stage:
        raise ArtifactError(
            f"{path}: written by stage {group.attrs.get('stage')!r}, expected {stage!r}"
        )
    return group


def describe(path: str | os.PathLike) -> str:
    """Return a human-readable listing of a Zarr group: arrays, shapes, dtypes, chunks, codecs, attrs.

    Works on incomplete groups too (it says so), since looking at a broken
    artifact is when one needs this most. Raises :class:`ArtifactError` if
    ``path`` is not a Zarr group.
    """
    path = Path(path)
    try:
        group = _open_read(path)
    except Exception as exc:
        raise ArtifactError(f"{path}: not a Zarr group ({exc})") from exc
    lines = [f"{path}"]
    if group.attrs.get("complete") is not True:
        lines.append("  WARNING: incomplete artifact (complete != true)")

    def walk(g: zarr.Group, prefix: str) -> None:
        for name, member in sorted(g.members(), key=lambda kv: kv[0]):
            full = f"{prefix}{name}"
            if isinstance(member, zarr.Group):
                lines.append(f"  {full}/ (group)")
                walk(member, full + "/")
            else:
                codecs = ", ".join(type(c).__name__ for c in (member.compressors or ())) or "none"
                lines.append(
                    f"  {full}: shape={tuple(member.shape)} dtype={member.dtype} "
                    f"chunks={tuple(member.chunks)} compressors=[{codecs}] "
                    f"stored={member.nbytes_stored():,} B"
                )
                for k, v in dict(member.attrs).items():
                    lines.append(f"      @{k} = {json.dumps(v)}")

    walk(group, "")
    lines.append("  attrs:")
    for k, v in sorted(dict(group.attrs).items()):
        lines.append(f"    {k} = {json.dumps(v)}")
    return "\n".join(lines)
