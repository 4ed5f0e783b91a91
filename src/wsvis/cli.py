"""The ``wsvis`` command line: one subcommand per workflow step, plus looking tools.

Rules call these subcommands with their config section as JSON (``--params``);
each subcommand turns it into keyword arguments of one library function.
Run ``wsvis --help`` or ``wsvis <command> --help``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

__all__ = ["main"]

log = logging.getLogger("wsvis")


def _set_threads(n: int) -> None:
    """Cap the threads of torch and OpenCV at the cores the scheduler gave the job."""
    import cv2
    import torch

    torch.set_num_threads(max(1, n))
    cv2.setNumThreads(max(1, n))


def _images(table: str) -> list[str]:
    return _frames(table)[0]


def _frames(table: str) -> tuple[list[str], list[str] | None]:
    """A video table's frame paths and source-frame paths in frame order (one read); the latter
    None for a table written before ``source_image`` existed (GrabCut at the source then says so)."""
    from wsvis.io.manifest import read_video_table

    df = read_video_table(table).sort_values("frame")
    return df["image"].tolist(), (df["source_image"].tolist() if "source_image" in df else None)


def cmd_ingest(args: argparse.Namespace) -> None:
    from wsvis.io.datasets import make_reader
    from wsvis.io.manifest import ingest_video

    cfg = json.loads(args.params)
    reader = make_reader(cfg["format"], **cfg["options"])
    ingest_video(
        reader, args.video, args.table, args.gt, split=cfg["split"], frames_dir=args.frames_dir,
        process_size=cfg.get("process_size"),
    )


def cmd_manifest(args: argparse.Namespace) -> None:
    from wsvis.io.manifest import merge_manifest

    merge_manifest(args.tables, args.gts, json.loads(args.categories), args.manifest, args.gt)


def cmd_flow(args: argparse.Namespace) -> None:
    from wsvis.flow.stage import compute_video_flow

    _set_threads(args.threads)
    cfg = json.loads(args.params)
    compute_video_flow(
        _images(args.table),
        args.out,
        backend=cfg["backend"],
        gaps=cfg["gaps"],
        backend_options=cfg["options"],
        compressor=cfg["compressor"],
        params=cfg,
    )


def cmd_depth(args: argparse.Namespace) -> None:
    from wsvis.depth.stage import compute_video_depth

    _set_threads(args.threads)
    cfg = json.loads(args.params)
    compute_video_depth(
        _images(args.table),
        args.out,
        backend=cfg["backend"],
        backend_options=cfg["options"],
        compressor=cfg["compressor"],
        params=cfg,
    )


def cmd_cam_train(args: argparse.Namespace) -> None:
    from wsvis.cam.train import train_cam
    from wsvis.io.manifest import read_manifest
    from wsvis.torchutil import prepare_checkpoint_dir

    _set_threads(args.threads)
    cfg = json.loads(args.params)
    prepare_checkpoint_dir(f"{args.out_dir}/checkpoints", cfg, inputs=[args.manifest])
    train_cam(
        read_manifest(args.manifest),
        json.loads(args.categories),
        args.out_dir,
        backbone=cfg["backbone"],
        weights=cfg["weights"],
        device=cfg["device"],
        **{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["train"].items()},
    )


def cmd_cam_infer(args: argparse.Namespace) -> None:
    from wsvis.cam.stage import compute_video_cams
    from wsvis.io.manifest import read_video_table

    _set_threads(args.threads)
    cfg = json.loads(args.params)
    table = read_video_table(args.table).sort_values("frame")
    compute_video_cams(
        table["image"].tolist(),
        [list(t) for t in table["tags"]],
        _model_categories(args.model),
        args.model,
        args.flow,
        args.out,
        scales=cfg["scales"],
        device=cfg["device"],
        params=cfg,
        **cfg["fcam"],
    )


def _model_categories(model_path: str) -> list[str]:
    import torch

    return list(torch.load(model_path, map_location="cpu", weights_only=True)["categories"])


def cmd_cam_floor(args: argparse.Namespace) -> None:
    from wsvis.cam.floor import compute_cam_floor

    compute_cam_floor(args.cam, args.out, source=args.source, threshold=args.threshold,
                      params={"threshold": args.threshold, "source": args.source})


def cmd_irn_labels(args: argparse.Namespace) -> None:
    from wsvis.irn.labels import make_video_ir_labels

    cfg = json.loads(args.params)
    make_video_ir_labels(_images(args.table), args.cam, args.source, args.out, flow_path=args.flow, params=cfg, **cfg)


def cmd_irn_train(args: argparse.Namespace) -> None:
    from wsvis.irn.train import train_irn
    from wsvis.torchutil import prepare_checkpoint_dir

    _set_threads(args.threads)
    cfg = json.loads(args.params)
    if len(args.labels) != len(args.tables) or (args.flows and len(args.flows) != len(args.tables)):
        raise ValueError("irn train: --tables, --labels (and --flows when given) must list the same videos")
    if cfg["flow_boundary"] and not args.flows:
        raise ValueError("irn train: the flow-boundary loss needs --flows")
    prepare_checkpoint_dir(f"{args.out_dir}/checkpoints", cfg,
                           inputs=[*args.tables, *args.labels, *(args.flows if cfg["flow_boundary"] else [])])
    train_irn(
        [_images(t) for t in args.tables],
        args.labels,
        args.flows if cfg["flow_boundary"] else None,
        args.out_dir,
        flow_boundary=cfg["flow_boundary"],
        lam=cfg.get("lam", 2.0),
        backbone=cfg["backbone"],
        weights=cfg["weights"],
        device=cfg["device"],
        **{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["train"].items()},
    )


def cmd_irn_pseudo(args: argparse.Namespace) -> None:
    from wsvis.irn.stage import make_video_pseudo_labels

    _set_threads(args.threads)
    cfg = json.loads(args.params)
    options = {k: v for k, v in cfg.items() if k != "source"}
    images, sources = _frames(args.table)
    make_video_pseudo_labels(
        images, args.cam, cfg["source"], args.model, args.out, variant=args.variant, params=cfg,
        source_images=sources, flow_path=args.flow, **options
    )


def cmd_stc_pseudo(args: argparse.Namespace) -> None:
    from wsvis.io.manifest import read_video_table
    from wsvis.stc.stage import compute_video_stc

    cfg = json.loads(args.params)
    table = read_video_table(args.table).sort_values("frame")
    if table.empty:
        raise ValueError(f"{args.table}: no frames")
    size = (int(table["height"].iloc[0]), int(table["width"].iloc[0]))
    compute_video_stc(
        list(table["boxes"]), list(table["box_classes"]), size, args.flow, args.depth, args.out,
        categories=json.loads(args.categories), images=table["image"].tolist(),
        source_images=table["source_image"].tolist() if "source_image" in table else None, params=cfg, **cfg,
    )


def cmd_baseline(args: argparse.Namespace) -> None:
    from wsvis.baselines import compute_video_baseline
    from wsvis.io.manifest import read_video_table

    _set_threads(args.threads)
    cfg = json.loads(args.params)
    compute_video_baseline(
        args.name, read_video_table(args.table), args.out, categories=json.loads(args.categories),
        flow_path=args.flow, params=cfg, **cfg,
    )


def _box_train(args: argparse.Namespace, cfg: dict) -> None:
    """``segment train`` for the box-supervised methods: boxes from the ingest tables."""
    from wsvis.boxsup.train import train_condinst
    from wsvis.io.manifest import read_video_table

    tables = [read_video_table(t).sort_values("frame") for t in args.tables]
    method = cfg["method"]
    if method == "stcseg" and len(args.pseudo) != len(args.tables):
        raise ValueError("segment train: stcseg needs --pseudo (pseudo/stc) for each of --tables")
    if method == "boxinst_flow" and len(args.flows) != len(args.tables):
        raise ValueError("segment train: boxinst_flow needs --flows for each of --tables")
    train_condinst(
        [t["image"].tolist() for t in tables],
        [list(t["boxes"]) for t in tables],
        [list(t["box_classes"]) for t in tables],
        args.out_dir,
        method=method,
        categories=json.loads(args.categories),
        pseudo_paths=args.pseudo or None,
        flow_paths=args.flows or None,
        backbone=cfg["backbone"],
        weights=cfg["weights"],
        device=cfg["device"],
        min_size=cfg["min_size"],
        max_size=cfg["max_size"],
        fpn_channels=cfg["fpn_channels"],
        **cfg["condinst"],
        **{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["train"].items()},
    )


def cmd_segment_train(args: argparse.Namespace) -> None:
    from wsvis.boxsup.train import BOX_METHODS
    from wsvis.maskconsist.train import train_maskrcnn

    _set_threads(args.threads)
    cfg = json.loads(args.params)
    if cfg["method"] in BOX_METHODS:
        _box_train(args, cfg)  # train_condinst keeps its own checkpoint folder stamp (resume)
        return
    if len(args.pseudo) != len(args.tables) or (args.flows and len(args.flows) != len(args.tables)):
        raise ValueError("segment train: --tables, --pseudo (and --flows when given) must list the same videos")
    if cfg["method"] == "maskconsist" and not args.flows:
        raise ValueError("segment train: MaskConsist needs --flows (inter-frame matching)")
    # train_maskrcnn stamps its checkpoint folder itself: a second stamp here with another dict
    # would empty the folder on every rerun and the training would never resume.
    train_maskrcnn(
        [_images(t) for t in args.tables],
        args.pseudo,
        args.flows or None,
        args.out_dir,
        method=cfg["method"],
        categories=json.loads(args.categories),
        backbone=cfg["backbone"],
        weights=cfg["weights"],
        device=cfg["device"],
        min_size=cfg["min_size"],
        max_size=cfg["max_size"],
        fpn_channels=cfg["fpn_channels"],
        **cfg.get("maskconsist", {}),
        **{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["train"].items()},
    )


def cmd_segment_predict(args: argparse.Namespace) -> None:
    import torch

    from wsvis.boxsup.predict import predict_video_condinst
    from wsvis.boxsup.train import BOX_METHODS
    from wsvis.maskconsist.predict import predict_video

    _set_threads(args.threads)
    cfg = json.loads(args.params)
    if not Path(args.model).is_file():
        raise FileNotFoundError(f"model not found: {args.model} (run the training stage first)")
    images, sources = _frames(args.table)
    if torch.load(args.model, map_location="cpu", weights_only=True).get("method") in BOX_METHODS:
        # proposals is Mask R-CNN's (its RPN); FCOS has none.
        predict_video_condinst(images, args.model, args.out, method=args.method, flow_path=args.flow,
                               params=cfg, source_images=sources,
                               **{k: v for k, v in cfg.items() if k != "proposals"})
        return
    # Mask R-CNN's masks lie in their boxes already: mask_in_box is CondInst's option.
    options = {k: v for k, v in cfg.items() if k != "mask_in_box"}
    predict_video(images, args.model, args.out, method=args.method, params=cfg, source_images=sources,
                  flow_path=args.flow, **options)


def cmd_segment_selftrain_pseudo(args: argparse.Namespace) -> None:
    from wsvis.maskconsist.predict import predictions_to_pseudo

    predictions_to_pseudo(args.predictions, args.out, args.score_threshold, overlap_threshold=args.overlap_threshold,
                          variant=f"selftrain_{args.run}")


def cmd_track(args: argparse.Namespace) -> None:
    from wsvis.io.manifest import read_video_table
    from wsvis.io.predictions import read_predictions
    from wsvis.track.stage import run_tracker, tracks_to_results, tracks_to_size, write_mots_txt, write_tracks

    table = read_video_table(args.table).sort_values("frame")
    tracks, attrs = run_tracker(
        args.predictions,
        tracker=args.tracker,
        options=json.loads(args.params),
        flow_path=args.flow,
        depth_path=args.depth,
        image_paths=table["image"].tolist(),
    )
    group, _ = read_predictions(args.predictions)
    num_frames = group["masks"].shape[0]
    # Results at the source frames' size (the gt's), also when the run worked at a processing size.
    size = (int(table["source_height"].iloc[0]), int(table["source_width"].iloc[0]))
    tracks = tracks_to_size(tracks, size)
    write_tracks(tracks_to_results(tracks, args.video, num_frames), args.out)
    write_mots_txt(tracks, args.mots, size)


def cmd_track_merge(args: argparse.Namespace) -> None:
    from wsvis.track.stage import merge_video_tracks

    merge_video_tracks(args.fragments, args.out)


def cmd_evaluate_pseudo(args: argparse.Namespace) -> None:
    from wsvis.evaluate.pseudo import pseudo_label_metrics

    videos = json.loads(args.videos)
    if len(videos) != len(args.pseudo):
        raise ValueError(f"--videos names {len(videos)} videos but --pseudo gives {len(args.pseudo)} artifacts")
    gt = json.loads(Path(args.gt).read_text())
    _write_json(args.out, pseudo_label_metrics(gt, dict(zip(videos, args.pseudo)), args.variant))


def _write_json(path: str, obj) -> None:
    from wsvis.io.store import atomic_file

    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, default=float))


def cmd_evaluate_frames(args: argparse.Namespace) -> None:
    from wsvis.evaluate.frames import frame_metrics

    videos = json.loads(args.videos)
    if len(videos) != len(args.predictions) or len(videos) != len(args.flows):
        raise ValueError("evaluate frames: --videos, --predictions and --flows must list the same videos")
    gt = json.loads(Path(args.gt).read_text())
    row = frame_metrics(gt, dict(zip(videos, args.predictions)), args.method, dict(zip(videos, args.flows)))
    _write_json(args.out, row)


def cmd_evaluate_video(args: argparse.Namespace) -> None:
    from wsvis.evaluate.tracks import track_metrics

    gt = json.loads(Path(args.gt).read_text())
    results = json.loads(Path(args.tracks).read_text())
    _write_json(args.out, track_metrics(gt, results, args.mots_dir, method=args.method, tracker=args.tracker))


def cmd_evaluate_summary(args: argparse.Namespace) -> None:
    from wsvis.evaluate.summary import write_summary

    def rows(paths):
        return [json.loads(Path(p).read_text()) for p in paths or ()]

    table = write_summary(rows(args.frames), rows(args.pseudo), rows(args.video), args.out,
                          per_sequence_csv=args.per_sequence)
    print(f"{len(table)} rows -> {args.out}")


def cmd_evaluate_table(args: argparse.Namespace) -> None:
    from wsvis.evaluate.pseudo import write_pseudo_label_table

    rows = [json.loads(Path(p).read_text()) for p in args.rows]
    print(write_pseudo_label_table(rows, args.out).to_string(index=False))


def _viz_cfg(params: str | None) -> dict:
    cfg = json.loads(params) if params else {}
    return {"frames": cfg.get("overview_frames", 6), "width": cfg.get("overview_width", 320)}


def cmd_viz_cam(args: argparse.Namespace) -> None:
    from wsvis.viz.overlay import cam_overlay

    cam_overlay(_images(args.table), args.cam, args.output, **_viz_cfg(args.params))


def cmd_viz_pseudo(args: argparse.Namespace) -> None:
    from wsvis.viz.overlay import pseudo_overlay

    pseudo_overlay(_images(args.table), args.pseudo, args.output, **_viz_cfg(args.params))


def cmd_viz_tracks(args: argparse.Namespace) -> None:
    from wsvis.viz.overlay import track_overlay

    results = json.loads(Path(args.tracks).read_text())
    categories = json.loads(Path(args.gt).read_text())["categories"] if args.gt else []
    names = [c["name"] for c in sorted(categories, key=lambda c: c["id"])]
    track_overlay(_images(args.table), results, args.output, categories=names, title=args.title, **_viz_cfg(args.params))


def cmd_evaluate_costs(args: argparse.Namespace) -> None:
    from wsvis.evaluate.costs import write_cost_table

    table = write_cost_table(args.benchmarks, args.out, json.loads(args.videos))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


def cmd_report(args: argparse.Namespace) -> None:
    from wsvis.viz.report import write_report

    sections: dict[str, list[str]] = {}
    for spec in args.pictures:
        section, _, path = spec.partition("=")
        sections.setdefault(section, []).append(path)
    try:
        families = json.loads(args.families) if args.families else None
    except json.JSONDecodeError as err:
        raise ValueError(f"--families is not JSON ({err}): {args.families!r}") from None
    print(write_report(args.out_dir, summary_csv=args.summary, pictures=sections, dataset=args.dataset,
                       families=families, costs_csv=args.costs, per_sequence_csv=args.per_sequence))


def cmd_viz_flow(args: argparse.Namespace) -> None:
    import numpy as np

    from wsvis.viz.flow import flow_picture
    from wsvis.viz.sheet import write_png

    picture = flow_picture(args.flow, args.frame, gap=args.gap, direction=args.direction)
    if args.image:
        from wsvis.io.images import read_image

        frame = read_image(args.image)
        if frame.shape != picture.shape:
            raise SystemExit(f"{args.image}: frame size {frame.shape[:2]} differs from the flow's {picture.shape[:2]}")
        picture = np.hstack([frame, picture])
    write_png(args.output, picture)
    print(args.output)


def cmd_viz_overview(args: argparse.Namespace) -> None:
    from wsvis.viz.flow import flow_overview

    cfg = json.loads(args.params) if args.params else {}
    flow_overview(_images(args.table), args.flow, args.output, **cfg)


def cmd_inspect(args: argparse.Namespace) -> None:
    from wsvis.io.store import describe

    for path in args.paths:
        print(describe(path))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``wsvis`` (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="wsvis",
        description="Weakly supervised video instance segmentation: workflow steps and inspection tools.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", help="read one video of a dataset into its frame table and ground truth")
    p.add_argument("--params", required=True, help='JSON {"format", "options", "split"} (wsvis.config.ingest_params)')
    p.add_argument("--video", required=True)
    p.add_argument("--table", required=True, help="output per-video parquet")
    p.add_argument("--gt", required=True, help="output per-video ground-truth JSON")
    p.add_argument("--frames-dir", default=None, help="where decoded frames go (video-file datasets)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("manifest", help="merge per-video tables into manifest.parquet and gt.json")
    p.add_argument("--categories", required=True, help="JSON list of class names in id order")
    p.add_argument("--tables", nargs="+", required=True)
    p.add_argument("--gts", nargs="+", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--gt", required=True)
    p.set_defaults(func=cmd_manifest)

    p = sub.add_parser("flow", help="forward/backward optical flow of one video into flow/{video}.zarr")
    p.add_argument("--table", required=True, help="the video's ingest table")
    p.add_argument("--out", required=True)
    p.add_argument("--params", required=True, help="JSON from wsvis.config.flow_params")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_flow)

    p = sub.add_parser("depth", help="monocular depth of one video into depth/{video}.zarr")
    p.add_argument("--table", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--params", required=True, help="JSON from wsvis.config.depth_params")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_depth)

    cam = sub.add_parser("cam", help="CAM classifier, CAMs / f-CAMs, CAM floor pseudo-labels").add_subparsers(
        dest="what", required=True, metavar="WHAT"
    )
    p = cam.add_parser("train", help="train the multi-label classifier on the manifest's class tags")
    p.add_argument("--manifest", required=True)
    p.add_argument("--out-dir", required=True, help="gets model.pt, train_log.csv, checkpoints/")
    p.add_argument("--params", required=True, help="JSON from wsvis.config.cam_train_params")
    p.add_argument("--categories", required=True, help="JSON list of class names in id order")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_cam_train)
    p = cam.add_parser("infer", help="CAMs and f-CAMs of one video into cam/{video}.zarr")
    p.add_argument("--table", required=True)
    p.add_argument("--flow", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--params", required=True, help="JSON from wsvis.config.cam_infer_params")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_cam_infer)
    p = cam.add_parser("floor", help="CAM floor pseudo-labels: one instance per connected class region")
    p.add_argument("--cam", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--threshold", type=float, default=0.15)
    p.add_argument("--source", choices=["cam", "fcam"], default="cam")
    p.set_defaults(func=cmd_cam_floor)

    irn = sub.add_parser("irn", help="IR labels, IRN / flowIRN training, instance pseudo-labels").add_subparsers(
        dest="what", required=True, metavar="WHAT"
    )
    p = irn.add_parser("labels", help="IR labels (confident fg/bg from CAMs, dense CRF) of one video")
    p.add_argument("--table", required=True)
    p.add_argument("--cam", required=True)
    p.add_argument("--source", choices=["cam", "fcam"], required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--flow", default=None, help="flow artifact (ir_labels.motion_background)")
    p.add_argument("--params", required=True, help="JSON ir_labels section")
    p.set_defaults(func=cmd_irn_labels)
    p = irn.add_parser("train", help="train IRN (or flowIRN with the flow-boundary loss)")
    p.add_argument("--tables", nargs="+", required=True, help="ingest tables of the training videos")
    p.add_argument("--labels", nargs="+", required=True, help="IR label artifacts, same video order")
    p.add_argument("--flows", nargs="*", default=[], help="flow artifacts, same order (flow-boundary loss)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--params", required=True, help="JSON from wsvis.config.irn_train_params")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_irn_train)
    p = irn.add_parser("pseudo", help="instance pseudo-labels of one video (random walk)")
    p.add_argument("--table", required=True)
    p.add_argument("--cam", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--variant", required=True)
    p.add_argument("--flow", help="flow/{video}.zarr, for irn.infer.motion_filter")
    p.add_argument("--out", required=True)
    p.add_argument("--params", required=True, help="JSON from wsvis.config.irn_infer_params")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_irn_pseudo)

    seg = sub.add_parser("segment", help="Mask R-CNN / MaskConsist: training, inference, self-training labels")
    seg = seg.add_subparsers(dest="what", required=True, metavar="WHAT")
    p = seg.add_parser("train", help="train Mask R-CNN / MaskConsist on pseudo-labels, or CondInst from boxes")
    p.add_argument("--tables", nargs="+", required=True, help="ingest tables (frames; boxes for box-supervised runs)")
    p.add_argument("--pseudo", nargs="*", default=[], help="pseudo-label artifacts, same video order (not boxinst)")
    p.add_argument("--flows", nargs="*", default=[], help="flow artifacts, same order (MaskConsist, boxinst_flow)")
    p.add_argument("--categories", required=True, help="JSON list of class names")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--params", required=True, help="JSON from wsvis.config.segment_train_params")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_segment_train)
    p = seg.add_parser("predict", help="per-frame predictions of one video into predictions/{run}/{video}.zarr")
    p.add_argument("--table", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--method", required=True, help="the run name stored in attrs")
    p.add_argument("--flow", default=None, help="the video's flow artifact (two-stream boxinst_flow models)")
    p.add_argument("--out", required=True)
    p.add_argument("--params", required=True, help="JSON from wsvis.config.segment_predict_params")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_segment_predict)
    p = seg.add_parser("selftrain-pseudo", help="first-round predictions -> pseudo-labels of the second round")
    p.add_argument("--predictions", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--score-threshold", type=float, default=0.5)
    p.add_argument("--overlap-threshold", type=float, default=0.5,
                   help="drop a detection left with less than this fraction of its mask by higher scores")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_segment_selftrain_pseudo)

    stc = sub.add_parser("stc", help="STC-Seg pseudo-labels").add_subparsers(dest="what", required=True, metavar="WHAT")
    p = stc.add_parser("pseudo", help="pseudo/stc/{video}.zarr: mini network on flow (and depth), M inside the boxes")
    p.add_argument("--table", required=True, help="the video's ingest table (boxes, box_classes)")
    p.add_argument("--flow", default=None)
    p.add_argument("--depth", default=None, help="the video's depth artifact (when a depth backend is configured)")
    p.add_argument("--out", required=True)
    p.add_argument("--categories", required=True, help="JSON list of class names")
    p.add_argument("--params", required=True, help="JSON from wsvis.config.stc_params")
    p.set_defaults(func=cmd_stc_pseudo)

    p = sub.add_parser("baseline", help="pseudo/{motion,box,grabcut}/{video}.zarr: a baseline with no learning")
    p.add_argument("--name", required=True, help="motion | box | grabcut")
    p.add_argument("--table", required=True, help="the video's ingest table (tags, boxes, frames)")
    p.add_argument("--flow", default=None, help="the video's flow artifact (motion)")
    p.add_argument("--out", required=True)
    p.add_argument("--categories", required=True, help="JSON list of class names")
    p.add_argument("--params", default="{}", help="JSON from wsvis.config.baseline_params")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_baseline)

    tr = sub.add_parser("track", help="trackers: per-frame predictions -> tracks").add_subparsers(
        dest="what", required=True, metavar="WHAT"
    )
    p = tr.add_parser("video", help="track one video: YouTube-VIS results fragment + MOTS txt")
    p.add_argument("--predictions", required=True)
    p.add_argument("--table", required=True, help="the video's ingest table (frames for appearance cues)")
    p.add_argument("--flow", default=None)
    p.add_argument("--depth", default=None)
    p.add_argument("--video", required=True)
    p.add_argument("--tracker", required=True, help="iou | unovost | stc")
    p.add_argument("--params", default="{}", help="JSON tracker options")
    p.add_argument("--out", required=True, help="results JSON fragment")
    p.add_argument("--mots", required=True, help="MOTS txt")
    p.set_defaults(func=cmd_track)
    p = tr.add_parser("merge", help="join per-video fragments into tracks/{method}/{tracker}.json")
    p.add_argument("--fragments", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_track_merge)

    ev = sub.add_parser("evaluate", help="metrics").add_subparsers(dest="what", required=True, metavar="WHAT")
    p = ev.add_parser("pseudo", help="pseudo-label quality of one variant against gt.json")
    p.add_argument("--gt", required=True)
    p.add_argument("--pseudo", nargs="+", required=True, help="pseudo/{variant}/{video}.zarr, in --videos order")
    p.add_argument("--videos", required=True, help="JSON list of video names")
    p.add_argument("--variant", required=True)
    p.add_argument("--out", required=True, help="JSON row")
    p.set_defaults(func=cmd_evaluate_pseudo)
    p = ev.add_parser("frames", help="frame metrics (AP, AP50, AP75, J, TC) of one method's predictions")
    p.add_argument("--gt", required=True)
    p.add_argument("--predictions", nargs="+", required=True)
    p.add_argument("--flows", nargs="+", required=True, help="flow artifacts, same video order (for TC)")
    p.add_argument("--videos", required=True, help="JSON list of video names")
    p.add_argument("--method", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_evaluate_frames)
    p = ev.add_parser("video", help="video metrics (YTVIS AP/AR, J&F, MOTS, HOTA) of one method x tracker")
    p.add_argument("--gt", required=True)
    p.add_argument("--tracks", required=True)
    p.add_argument("--mots-dir", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--tracker", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_evaluate_video)
    p = ev.add_parser("costs", help="metrics/costs.csv: wall seconds and max RSS per stage from benchmark files")
    p.add_argument("--benchmarks", required=True, help="results/<dataset>/benchmarks")
    p.add_argument("--videos", default="[]", help="JSON list of video names (per-video files are summed)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_evaluate_costs)
    p = ev.add_parser("summary", help="join all metric rows into metrics/summary.csv")
    p.add_argument("--frames", nargs="*", default=[])
    p.add_argument("--pseudo", nargs="*", default=[])
    p.add_argument("--video", nargs="*", default=[])
    p.add_argument("--out", required=True)
    p.add_argument("--per-sequence", default=None, help="also write metrics/per_sequence.csv (J per video) here")
    p.set_defaults(func=cmd_evaluate_summary)
    p = ev.add_parser("table", help="join per-variant JSON rows into metrics/pseudo_labels.csv")
    p.add_argument("--rows", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_evaluate_table)

    viz = sub.add_parser("viz", help="pictures of artifacts").add_subparsers(dest="what", required=True, metavar="WHAT")
    p = viz.add_parser("flow", help="colour-code one flow field of a flow .zarr")
    p.add_argument("flow", help="flow/{video}.zarr")
    p.add_argument("--frame", type=int, required=True, help="pair index t")
    p.add_argument("--gap", type=int, default=1)
    p.add_argument("--direction", choices=["forward", "backward"], default="forward")
    p.add_argument("--image", default=None, help="show this frame beside the flow")
    p.add_argument("-o", "--output", required=True, help="PNG path")
    p.set_defaults(func=cmd_viz_flow)
    p = viz.add_parser("overview", help="per-video sheet of frames, flow colours and occlusion")
    p.add_argument("--table", required=True)
    p.add_argument("--flow", required=True)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--params", default=None, help="JSON viz section")
    p.set_defaults(func=cmd_viz_overview)

    p = viz.add_parser("cam", help="per-video sheet of CAM and f-CAM overlays")
    p.add_argument("--table", required=True)
    p.add_argument("--cam", required=True)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--params", default=None, help="JSON viz section")
    p.set_defaults(func=cmd_viz_cam)
    p = viz.add_parser("pseudo", help="per-video sheet of pseudo-label instances")
    p.add_argument("--table", required=True)
    p.add_argument("--pseudo", required=True)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--params", default=None, help="JSON viz section")
    p.set_defaults(func=cmd_viz_pseudo)

    p = viz.add_parser("tracks", help="per-video sheet of tracks, one colour per track id")
    p.add_argument("--table", required=True)
    p.add_argument("--tracks", required=True, help="the video's results fragment (tracks/.../{video}.json)")
    p.add_argument("--gt", default=None, help="gt.json, for class names")
    p.add_argument("--title", default="tracks")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--params", default=None, help="JSON viz section")
    p.set_defaults(func=cmd_viz_tracks)

    p = sub.add_parser("report", help="write the static HTML report (summary table, plots, pictures)")
    p.add_argument("--summary", required=True, help="metrics/summary.csv")
    p.add_argument("--pictures", nargs="*", default=[], help="SECTION=PNG entries")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--families", default=None,
                   help='JSON {"tags": {"baselines": [...], "methods": [...]}, "boxes": {...}}: '
                        "which summary methods are baselines / methods of each supervision family")
    p.add_argument("--costs", default=None, help="metrics/costs.csv: adds the per-stage cost section")
    p.add_argument("--per-sequence", default=None, help="metrics/per_sequence.csv: adds the J-per-video table")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("inspect", help="print arrays, shapes, dtypes, chunking and attrs of .zarr artifacts")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``wsvis`` console script. Returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (ValueError, KeyError, IndexError, FileNotFoundError, RuntimeError) as exc:
        # Library errors name the file/video/frame/key; print them without a traceback.
        if args.verbose:
            raise
        print(f"wsvis {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
