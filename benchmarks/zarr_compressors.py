"""Compare the Zarr compressors of ``wsvis.io.store.COMPRESSORS`` on real DIS flow.

Computes DIS (medium) forward flow of the first ``--frames`` + 1 DAVIS 480p
frames of each video, converts it to float16 as the flow stage stores it,
and for every candidate compressor writes it with
:class:`wsvis.io.store.ArtifactWriter` (one flow field per chunk) and reads
it back. Prints stored bytes per flow field, compression ratio vs raw
float16 and raw float32, write time per field in ms (wall, and CPU of all
threads: zarr compresses in its own worker threads), and write / read
throughput in MB/s of raw float16 data (1 MB = 1e6 bytes; best of
``--repeat`` runs). The header gives the float32 -> float16 cast per field,
so the cost of one flow field's write splits into cast, per-chunk Zarr
overhead (the ``none`` row) and compression (the rest).

Rows marked ``*`` are candidates outside ``COMPRESSORS`` (Blosc with bit
shuffle, lower Zstd levels), registered here only for the measurement: a
new name also needs the config schema's enum.

    python benchmarks/zarr_compressors.py [--davis DIR] [--videos blackswan dog] [--frames 24]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402
from zarr.codecs import BloscCodec, BloscShuffle  # noqa: E402

from wsvis.flow import make_flow_backend  # noqa: E402
from wsvis.io.images import read_image  # noqa: E402
from wsvis.io.store import COMPRESSORS, DEFAULT_COMPRESSOR, ArtifactWriter, open_artifact  # noqa: E402

CANDIDATES = {
    "blosc-zstd-1": lambda: BloscCodec(cname="zstd", clevel=1, shuffle=BloscShuffle.shuffle),
    "blosc-zstd-bit": lambda: BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.bitshuffle),
    "blosc-zstd-1-bit": lambda: BloscCodec(cname="zstd", clevel=1, shuffle=BloscShuffle.bitshuffle),
    "blosc-lz4-bit": lambda: BloscCodec(cname="lz4", clevel=5, shuffle=BloscShuffle.bitshuffle),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis", type=Path, default=REPO.parent / "shared" / "data" / "davis2016")
    parser.add_argument("--videos", nargs="+", default=["blackswan", "dog"])
    parser.add_argument("--frames", type=int, default=24, help="flow fields per video")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch / OpenCV threads")
    args = parser.parse_args()

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    dis = make_flow_backend("dis", preset="medium")
    fields = []
    for video in args.videos:
        paths = sorted((args.davis / "JPEGImages" / "480p" / video).glob("*.jpg"))[: args.frames + 1]
        frames = [read_image(p) for p in paths]
        fields += [dis(frames[t], frames[t + 1]) for t in range(len(frames) - 1)]
    cast = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        flow = np.stack([f.astype(np.float16) for f in fields])
        cast = min(cast, (time.perf_counter() - start) / len(fields))
    n, h, w, _ = flow.shape
    raw16 = flow.nbytes / n
    print(f"{n} DIS flow fields of {args.videos} ({w}x{h}); raw float16 {raw16:,.0f} B/field, "
          f"float32 {2 * raw16:,.0f} B/field; float32 -> float16 cast {1e3 * cast:.1f} ms/field; "
          f"default compressor: {DEFAULT_COMPRESSOR}")
    print(f"{'compressor':<17} {'B/field':>10} {'ratio f16':>9} {'ratio f32':>9} {'write ms':>8} {'CPU ms':>6} "
          f"{'write MB/s':>10} {'read MB/s':>9}")
    COMPRESSORS.update(CANDIDATES)  # this process only
    for name in COMPRESSORS:
        best_write = best_read = best_cpu = float("inf")
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "flow.zarr"
                start, cpu = time.perf_counter(), time.process_time()
                with ArtifactWriter(out, stage="bench", compressor=name) as writer:
                    arr = writer.create_array("forward", shape=flow.shape, dtype="float16")
                    for t in range(n):
                        arr[t] = flow[t]
                best_write = min(best_write, time.perf_counter() - start)
                best_cpu = min(best_cpu, time.process_time() - cpu)
                stored = open_artifact(out, "bench")["forward"]
                start = time.perf_counter()
                back = [stored[t] for t in range(n)]
                best_read = min(best_read, time.perf_counter() - start)
                per_field = stored.nbytes_stored() / n
            assert np.array_equal(np.stack(back), flow)
        mb = flow.nbytes / 1e6
        label = f"{name}{'*' if name in CANDIDATES else ''}"
        print(f"{label:<17} {per_field:10,.0f} {raw16 / per_field:9.2f} {2 * raw16 / per_field:9.2f} "
              f"{1e3 * best_write / n:8.1f} {1e3 * best_cpu / n:6.1f} {mb / best_write:10.1f} {mb / best_read:9.1f}")


if __name__ == "__main__":
    main()
