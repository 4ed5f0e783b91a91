"""MaskConsist training overhead vs plain Mask R-CNN, and inference time per frame, on CPU.

Same model (Mask R-CNN, MobileNetV2-FPN with the shipped ImageNet weights
``resources/weights/mobilenet_v2_features_imagenet.pt``), same batch (one
frame pair (0, 5) of the ``resources/demo`` video, 427x240, ``min_size`` 240,
``max_size`` 427), one run:

* pseudo-labels: the demo's ground-truth masks (``Annotations/<video>/*.png``,
  {0, 255}, one object, class from ``labels.csv``) written with
  :class:`wsvis.io.pseudo.PseudoLabelWriter`; flow: DIS via
  :func:`wsvis.flow.stage.compute_video_flow` (``gaps=[5]``), in a temp dir;
* training iteration = :func:`wsvis.maskconsist.train.maskconsist_losses` +
  ``backward`` (no optimizer step, so both variants see the same weights),
  with ``consist=True`` (predictions from the training forward, no-grad mask
  head on the detections, matching, Alg. 1, IoM-NMS, re-assignment) and
  ``consist=False`` (plain Mask R-CNN losses on the pseudo-labels), the two
  alternating, same torch seed each time; median of ``--repeats`` after one
  warm-up each. ``--train-steps`` SGD steps on the pair first make the
  detections less random than at initialisation;
* inference: :func:`wsvis.models.maskrcnn.detect` per frame (score 0.05,
  NMS 0.5, 20 detections), median over the video's first frames.

    python benchmarks/maskconsist_overhead.py [--video blackswan] [--threads 2] [--repeats 5] [--train-steps 0]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from wsvis.flow.stage import compute_video_flow, read_flow  # noqa: E402
from wsvis.io.images import read_mask  # noqa: E402
from wsvis.io.pseudo import PseudoLabelWriter, frame_instances, read_pseudo  # noqa: E402
from wsvis.maskconsist.matching import make_instances  # noqa: E402
from wsvis.maskconsist.train import FramePair, image_tensor, maskconsist_losses  # noqa: E402
from wsvis.models.maskrcnn import build_maskrcnn, detect  # noqa: E402

DEMO = REPO / "resources" / "demo"
WEIGHTS = REPO / "resources" / "weights" / "mobilenet_v2_features_imagenet.pt"
DELTA = 5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", default="blackswan")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-steps", type=int, default=0)
    ap.add_argument("--rois-per-image", type=int, default=512)
    ap.add_argument("--top-k", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with open(DEMO / "labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    categories = sorted({r["class"] for r in rows})
    cls = categories.index(next(r["class"] for r in rows if r["video"] == args.video)) + 1
    frames = sorted((DEMO / "JPEGImages" / args.video).glob("*.jpg"))[: DELTA + 1]
    masks = [read_mask(DEMO / "Annotations" / args.video / f"{p.stem}.png") > 0 for p in frames]
    h, w = masks[0].shape

    with tempfile.TemporaryDirectory() as tmp:
        pseudo_path, flow_path = Path(tmp) / "pseudo.zarr", Path(tmp) / "flow.zarr"
        with PseudoLabelWriter(pseudo_path, num_frames=len(frames), frame_size=(h, w), variant="gt",
                               categories=categories) as wr:
            for t, m in enumerate(masks):
                wr.add_frame(t, m[None], np.array([cls]), np.array([1.0]))
        compute_video_flow(frames, flow_path, backend="dis", gaps=[DELTA], progress=False)
        inst, classes, scores, _ = read_pseudo(pseudo_path)
        pseudo = [make_instances(*frame_instances(np.asarray(inst[t]), classes, scores)[1:]) for t in (0, DELTA)]
        pair = FramePair(0, 1, np.asarray(read_flow(flow_path, DELTA, "backward")[0], np.float32),
                         np.asarray(read_flow(flow_path, DELTA, "forward")[0], np.float32))
    images = [image_tensor(frames[0]), image_tensor(frames[DELTA])]

    torch.manual_seed(0)
    model = build_maskrcnn(len(categories) + 1, backbone="mobilenet_v2", weights=str(WEIGHTS), min_size=240,
                           max_size=427, rois_per_image=args.rois_per_image).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.002, momentum=0.9, weight_decay=1e-4)
    for _ in range(args.train_steps):
        losses, _ = maskconsist_losses(model, images, pseudo, [pair], consist=False)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()

    def step(consist: bool) -> tuple[float, int]:
        torch.manual_seed(1)
        t0 = time.perf_counter()
        losses, labels = maskconsist_losses(model, images, pseudo, [pair], consist=consist, top_k=args.top_k)
        sum(losses.values()).backward()
        dt = time.perf_counter() - t0
        model.zero_grad(set_to_none=True)
        return dt, sum(len(lab) for lab in labels)

    times: dict[bool, list[float]] = {False: [], True: []}
    labels_count = {}
    for r in range(args.repeats + 1):
        for consist in (False, True):
            dt, n = step(consist)
            labels_count[consist] = n
            if r > 0:
                times[consist].append(dt)
    off, on = statistics.median(times[False]), statistics.median(times[True])

    # how many detections the matching sees at this point of training (same sampling as the timed step)
    from wsvis.maskconsist import train as mc_train

    seen = []
    orig = mc_train._predict_from_training

    def spy(*a, **k):
        out = orig(*a, **k)
        seen.extend(len(p) for p in out if p is not None)
        return out

    mc_train._predict_from_training = spy
    step(True)
    mc_train._predict_from_training = orig

    model.eval()
    model.roi_heads.score_thresh, model.roi_heads.nms_thresh, model.roi_heads.detections_per_img = 0.05, 0.5, 20
    all_frames = sorted((DEMO / "JPEGImages" / args.video).glob("*.jpg"))[:6]
    detect(model, [image_tensor(all_frames[0])])
    inf = []
    for p in all_frames:
        img = image_tensor(p)
        t0 = time.perf_counter()
        detect(model, [img])
        inf.append(time.perf_counter() - t0)

    print(f"video {args.video}, {w}x{h}, min_size 240, max_size 427, threads {args.threads}, "
          f"rois/image {args.rois_per_image}, top_k {args.top_k}, train steps before timing {args.train_steps}")
    print(f"train iteration (fwd+bwd, pair), MaskConsist off: {off * 1000:.0f} ms  (labels {labels_count[False]})")
    print(f"train iteration (fwd+bwd, pair), MaskConsist on:  {on * 1000:.0f} ms  (labels {labels_count[True]}, "
          f"detections matched per frame {seen})")
    print(f"ratio on/off: {on / off:.3f}  (target <= 1.15)")
    print(f"inference per frame: {statistics.median(inf) * 1000:.0f} ms (median of {len(inf)})")


if __name__ == "__main__":
    main()
