"""MaskConsist's label construction (Liu et al., CVPR 2021, §3.3, Algorithm 1, Appendix A.2).

Pure functions on one pair of frames (t, t+δ). A set of instances
(predictions, expanded predictions or pseudo-labels) is an :class:`Instances`
of torch tensors on the CPU, all on one frame's pixel grid (H, W):

* ``masks``  (K, H, W) bool;
* ``boxes``  (K, 4) float32 ``x1, y1, x2, y2`` in pixels. Boxes made from a
  mask (:func:`mask_boxes`) cover the mask's pixels: ``x2 = last column + 1``,
  so a one-pixel mask has a 1 x 1 box (torchvision's training code rejects
  zero-size boxes); an empty mask has the box (0, 0, 0, 0);
* ``labels`` (K,) int64 category ids (1-based; 0 never occurs);
* ``scores`` (K,) float32 confidence (pseudo-labels: their stored score).

The steps, in the paper's order:

1. :func:`expand_predictions` — intra-frame matching, P^t -> P^t_exp (Fig. 3a);
2. :func:`match_frames` — inter-frame matching: edge weights
   e_ij = 1[c_i = c_j] · IoU(W_{t→t+δ}(p_i^t), p_j^{t+δ}) and a one-to-one
   Hungarian assignment (Fig. 3b); W is :func:`warp_instances`
   (bilinear ``grid_sample`` warp, threshold 0.5, box from the warped mask,
   class copied: Appendix A.2, via :func:`wsvis.flow.ops.warp_mask`);
3. :func:`transfer_labels` — Algorithm 1, temporally consistent labels (Fig. 3c);
4. :func:`maskconsist_targets` — P_maskCon ∪ P_fIRN, IoM-NMS (:func:`iom_nms`),
   as torchvision training targets, for both frames.

Flow convention (:mod:`wsvis.flow.stage`): carrying masks of frame t onto
frame t+δ needs the flow t+δ -> t on frame t+δ's grid (``backward[t]`` of the
flow artifact); the other direction needs ``forward[t]``.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou

from wsvis.flow.ops import warp_mask

__all__ = [
    "MERGES",
    "Instances",
    "make_instances",
    "empty_instances",
    "mask_boxes",
    "mask_iou",
    "iom",
    "iom_nms",
    "expand_predictions",
    "warp_instances",
    "hungarian",
    "match_frames",
    "transfer_labels",
    "maskconsist_targets",
    "to_target",
]

MERGES = ("union", "majority")  # Alg. 1 line 5: the paper's Merge, our pixel vote (transfer_labels)


class Instances(NamedTuple):
    """Instances of one frame (see module docstring for shapes, dtypes and units)."""

    masks: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor

    def __len__(self) -> int:  # type: ignore[override]
        return int(self.labels.shape[0])

    def select(self, index) -> "Instances":
        """The instances at ``index`` (a (K,) bool mask or a sequence / tensor of indices)."""
        if not torch.is_tensor(index):
            index = torch.as_tensor(np.asarray(index, dtype=np.int64).reshape(-1))
        return Instances(self.masks[index], self.boxes[index], self.labels[index], self.scores[index])

    @staticmethod
    def cat(parts: Sequence["Instances"]) -> "Instances":
        """Concatenate instance sets of one frame (at least one part)."""
        return Instances(*(torch.cat([getattr(p, f) for p in parts]) for f in Instances._fields))


def _t(x, dtype) -> torch.Tensor:
    return x.detach().cpu().to(dtype) if torch.is_tensor(x) else torch.as_tensor(np.asarray(x)).to(dtype)


def make_instances(masks, labels, scores=None, boxes=None) -> Instances:
    """Build :class:`Instances` from numpy or torch inputs.

    Args:
        masks: (K, H, W) bool or {0, 1}.
        labels: (K,) category ids.
        scores: (K,) floats; default all 1.
        boxes: (K, 4) xyxy pixels; default :func:`mask_boxes` of ``masks``.

    Raises:
        ValueError: lengths differ or masks are not 3-D.
    """
    m = _t(masks, torch.bool)
    if m.ndim != 3:
        raise ValueError(f"masks must be (K, H, W), got {tuple(m.shape)}")
    k = m.shape[0]
    lab = _t(labels, torch.int64).reshape(-1)
    sc = torch.ones(k) if scores is None else _t(scores, torch.float32).reshape(-1)
    bx = mask_boxes(m) if boxes is None else _t(boxes, torch.float32).reshape(-1, 4)
    if not (len(lab) == len(sc) == len(bx) == k):
        raise ValueError(f"{k} masks, {len(lab)} labels, {len(sc)} scores, {len(bx)} boxes")
    return Instances(m, bx, lab, sc)


def empty_instances(height: int, width: int) -> Instances:
    """No instances on an (H, W) frame."""
    return Instances(
        torch.zeros((0, height, width), dtype=torch.bool),
        torch.zeros((0, 4)),
        torch.zeros(0, dtype=torch.int64),
        torch.zeros(0),
    )


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Boxes covering binary masks: (K, H, W) bool -> (K, 4) float32 ``x1, y1, x2 + 1, y2 + 1``.

    Pixel-edge convention (module docstring); an empty mask gives (0, 0, 0, 0).
    """
    masks = _t(masks, torch.bool)
    k = masks.shape[0]
    boxes = torch.zeros((k, 4), dtype=torch.float32)
    if k == 0:
        return boxes
    rows = masks.any(dim=2)  # (K, H)
    cols = masks.any(dim=1)  # (K, W)
    nonempty = rows.any(dim=1)
    h, w = masks.shape[1:]
    ar_h = torch.arange(h)
    ar_w = torch.arange(w)
    y1 = torch.where(rows, ar_h, h).min(dim=1).values
    y2 = torch.where(rows, ar_h, -1).max(dim=1).values + 1
    x1 = torch.where(cols, ar_w, w).min(dim=1).values
    x2 = torch.where(cols, ar_w, -1).max(dim=1).values + 1
    boxes[nonempty] = torch.stack((x1, y1, x2, y2), dim=1).float()[nonempty]
    return boxes


def _intersections(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairwise intersection areas (A, B) and the areas (A,), (B,) of two bool mask stacks, in pixels."""
    fa = a.flatten(1).float()
    fb = b.flatten(1).float()
    return fa @ fb.T, fa.sum(1), fb.sum(1)


def mask_iou(masks_a, masks_b) -> torch.Tensor:
    """Mask IoU, (A, H, W) x (B, H, W) bool -> (A, B) float32; 0 where both masks are empty."""
    a, b = _t(masks_a, torch.bool), _t(masks_b, torch.bool)
    inter, area_a, area_b = _intersections(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def iom(masks_a, masks_b) -> torch.Tensor:
    """Intersection over Minimum (MaskConsist §3.3, "label combining"): |a ∩ b| / min(|a|, |b|).

    A mask contained in another has IoM 1 with it, whatever their sizes.

    Args:
        masks_a: (A, H, W) bool (numpy or torch).
        masks_b: (B, H, W) bool on the same grid.

    Returns:
        (A, B) float32 in [0, 1]; 0 where either mask is empty.
    """
    a, b = _t(masks_a, torch.bool), _t(masks_b, torch.bool)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"masks on different grids: {tuple(a.shape)} and {tuple(b.shape)}")
    inter, area_a, area_b = _intersections(a, b)
    smaller = torch.minimum(area_a[:, None], area_b[None, :])
    return torch.where(smaller > 0, inter / smaller.clamp(min=1), torch.zeros_like(inter))


def iom_nms(masks, labels, scores, threshold: float = 0.5) -> torch.Tensor:
    """IoM-NMS (MaskConsist §3.3): per class, suppress masks contained in a larger kept mask.

    "It is important to suppress smaller masks that are contained within the
    others": masks are visited in decreasing area (ties: higher score first,
    then lower index); a mask is dropped when its IoM (:func:`iom`) with an
    already kept mask *of the same class* exceeds ``threshold``. So of two
    nested masks of one class the larger one stays, whatever the scores, and
    masks of different classes never suppress each other. Empty masks are dropped.

    Args:
        masks: (K, H, W) bool.
        labels: (K,) category ids.
        scores: (K,) float (tie-break only).
        threshold: IoM above which a mask is suppressed (paper 0.5).

    Returns:
        (K',) int64 indices of the kept masks, increasing.
    """
    m = _t(masks, torch.bool)
    lab = _t(labels, torch.int64).reshape(-1)
    sc = _t(scores, torch.float32).reshape(-1)
    k = m.shape[0]
    if k == 0:
        return torch.zeros(0, dtype=torch.int64)
    area = m.reshape(k, -1).sum(1)
    order = sorted(range(k), key=lambda i: (-int(area[i]), -float(sc[i]), i))
    overlap = iom(m, m)
    kept: list[int] = []
    for i in order:
        if area[i] == 0:
            continue
        if any(lab[j] == lab[i] and overlap[i, j] > threshold for j in kept):
            continue
        kept.append(i)
    return torch.as_tensor(sorted(kept), dtype=torch.int64)


def expand_predictions(
    pred_masks,
    pred_boxes,
    pred_labels,
    pred_scores,
    pseudo_boxes,
    pseudo_labels,
    iou_threshold: float = 0.5,
    top_k: int = 100,
) -> Instances:
    """Intra-frame matching (MaskConsist §3.3, Fig. 3a): P^t -> P^t_exp.

    P^t_exp = the ``top_k`` highest-scoring predictions ("in practice, we use
    top 100 predictions") plus, for each pseudo-label, the union of the masks
    of those top-k predictions *of its class* whose box IoU with the
    pseudo-label's box exceeds ``iou_threshold`` (``torchvision.ops.box_iou``;
    paper 0.5). A union is added only when it combines two or more predictions
    (a single one is already in P^t) and only once when several pseudo-labels
    give the same group. A union's box is :func:`mask_boxes` of its mask, its
    class the pseudo-label's, its score the highest of its members.

    Args:
        pred_masks: (N, H, W) bool; pred_boxes: (N, 4) xyxy pixels;
        pred_labels: (N,) category ids; pred_scores: (N,) float.
        pseudo_boxes: (M, 4) xyxy pixels; pseudo_labels: (M,) category ids.
        iou_threshold: box IoU for a prediction to join a pseudo-label's union.
        top_k: predictions kept before expansion.

    Returns:
        :class:`Instances` P^t_exp: the top-k predictions (decreasing score) then the unions.
    """
    preds = make_instances(pred_masks, pred_labels, pred_scores, pred_boxes)
    order = torch.argsort(preds.scores, descending=True, stable=True)[:top_k]
    preds = preds.select(order)
    p_boxes = _t(pseudo_boxes, torch.float32).reshape(-1, 4)
    p_labels = _t(pseudo_labels, torch.int64).reshape(-1)
    if len(preds) == 0 or len(p_boxes) == 0:
        return preds
    iou = box_iou(preds.boxes, p_boxes)  # (N, M)
    same = preds.labels[:, None] == p_labels[None, :]
    member = (iou > iou_threshold) & same
    unions, seen = [], set()
    for k in range(len(p_boxes)):
        idx = torch.nonzero(member[:, k]).flatten()
        key = tuple(idx.tolist())
        if len(idx) < 2 or key in seen:
            continue
        seen.add(key)
        mask = preds.masks[idx].any(dim=0, keepdim=True)
        unions.append(Instances(mask, mask_boxes(mask), p_labels[k : k + 1].clone(), preds.scores[idx].max().reshape(1)))
    return Instances.cat([preds, *unions]) if unions else preds


def warp_instances(inst: Instances, flow_target_to_source) -> Instances:
    """W_{t→t+δ} (MaskConsist Appendix A.2): warp instances of frame t onto frame t+δ.

    Masks are warped bilinearly (``grid_sample``) and binarised at 0.5 by
    :func:`wsvis.flow.ops.warp_mask`; boxes are recomputed from the warped
    masks (:func:`mask_boxes`, pixel-edge convention); classes and scores are copied.

    Args:
        inst: instances on frame t's grid (H, W).
        flow_target_to_source: (H, W, 2) flow t+δ -> t on frame t+δ's grid,
            pixels, x then y (numpy or torch).
    """
    warped, _ = warp_mask(inst.masks, _t(flow_target_to_source, torch.float32))
    return Instances(warped.cpu(), mask_boxes(warped.cpu()), inst.labels.clone(), inst.scores.clone())


def hungarian(weights) -> list[tuple[int, int]]:
    """One-to-one assignment maximising the total weight, keeping only pairs with weight > 0.

    ``scipy.optimize.linear_sum_assignment(maximize=True)`` (the Hungarian
    algorithm of MaskConsist's inter-frame matching, §3.3).

    Args:
        weights: (A, B) non-negative edge weights.

    Returns:
        Sorted list of ``(i, j)`` pairs.
    """
    w = np.asarray(weights.cpu() if torch.is_tensor(weights) else weights, dtype=np.float64)
    if w.size == 0:
        return []
    rows, cols = linear_sum_assignment(w, maximize=True)
    return sorted((int(i), int(j)) for i, j in zip(rows, cols) if w[i, j] > 0)


def match_frames(p_exp_t: Instances, p_exp_t2: Instances, flow_t2_to_t, *, warped: Instances | None = None) -> list[tuple[int, int]]:
    """Inter-frame matching (MaskConsist §3.3, Fig. 3b) between P^t_exp and P^{t+δ}_exp.

    e_ij = 1[c_i = c_j] · IoU(W_{t→t+δ}(p_i^t), p_j^{t+δ}) with mask IoU, then
    :func:`hungarian`: a one-to-one matching M^{t,t+δ}, pairs with e_ij > 0 only.

    Args:
        p_exp_t, p_exp_t2: expanded predictions of frames t and t+δ.
        flow_t2_to_t: (H, W, 2) flow t+δ -> t on frame t+δ's grid (``backward[t]``).
        warped: ``warp_instances(p_exp_t, flow_t2_to_t)`` if already computed.

    Returns:
        Sorted ``(i, j)`` index pairs into ``p_exp_t`` and ``p_exp_t2``.
    """
    if len(p_exp_t) == 0 or len(p_exp_t2) == 0:
        return []
    w = warp_instances(p_exp_t, flow_t2_to_t) if warped is None else warped
    e = mask_iou(w.masks, p_exp_t2.masks) * (p_exp_t.labels[:, None] == p_exp_t2.labels[None, :]).float()
    return hungarian(e)


def transfer_labels(
    matches: Sequence[tuple[int, int]],
    p_exp_t: Instances,
    p_exp_t2: Instances,
    pseudo_t: Instances,
    flow_t2_to_t,
    iou_threshold: float = 0.5,
    *,
    warped: Instances | None = None,
    merge: str = "union",
    pseudo_t2: Instances | None = None,
) -> Instances:
    """Algorithm 1 (temporally consistent assignment): P^{t+δ}_maskCon from M^{t,t+δ} and P^t_fIRN.

    For each matched pair (p_i^t, p_j^{t+δ}): if the *box* IoU of b_i^t with
    some original pseudo-label of frame t of the same class exceeds
    ``iou_threshold`` (line 4; paper 0.5), add
    Merge(W_{t→t+δ}(p_i^t), p_j^{t+δ}) (line 5): the union of the warped mask
    and the matched mask, its box recomputed (:func:`mask_boxes`), class c_i^t,
    score that of p_i^t. At most one label per pair (the ``break``).
    For the direction t+δ -> t call it with the frames swapped, the pairs
    reversed and the flow t -> t+δ.

    ``merge="majority"`` (our option) replaces line 5's union by a pixel vote
    of three masks: the warped one, the matched one and the union of the
    original pseudo-labels of frame t+δ of the class (empty if none): a pixel
    is in the label when two of the three have it. A union of two masks of one
    object that agree at IoU u is 2/(1+u) times the object (1.2x at u = 0.7),
    and IoM-NMS keeps the larger of nested masks, so under ``union`` the labels
    grow with every round of training on them; the vote neither grows nor
    shrinks them systematically.

    Args:
        matches: ``(i, j)`` pairs from :func:`match_frames`.
        p_exp_t, p_exp_t2: expanded predictions of t and t+δ.
        pseudo_t: original pseudo-labels of frame t (P^t_fIRN).
        flow_t2_to_t: (H, W, 2) flow t+δ -> t on frame t+δ's grid.
        iou_threshold: box IoU of line 4.
        warped: ``warp_instances(p_exp_t, flow_t2_to_t)`` if already computed.
        merge: ``"union"`` (the paper's Merge) or ``"majority"``.
        pseudo_t2: original pseudo-labels of frame t+δ (the third voter of ``majority``).

    Returns:
        :class:`Instances` on frame t+δ's grid (possibly none).

    Raises:
        ValueError: unknown ``merge``; ``majority`` without ``pseudo_t2``.
    """
    if merge not in MERGES:
        raise ValueError(f"segment.maskconsist.merge must be one of {MERGES}, got {merge!r}")
    if merge == "majority" and pseudo_t2 is None:
        raise ValueError("merge 'majority' needs the pseudo-labels of frame t+δ (pseudo_t2)")
    h, w = p_exp_t2.masks.shape[1:] if len(p_exp_t2) else p_exp_t.masks.shape[1:]
    if not matches or len(pseudo_t) == 0:
        return empty_instances(h, w)
    ii = torch.as_tensor([i for i, _ in matches], dtype=torch.int64)
    jj = torch.as_tensor([j for _, j in matches], dtype=torch.int64)
    iou = box_iou(p_exp_t.boxes[ii], pseudo_t.boxes)  # (P, M)
    same = p_exp_t.labels[ii][:, None] == pseudo_t.labels[None, :]
    ok = ((iou > iou_threshold) & same).any(dim=1)
    if not ok.any():
        return empty_instances(h, w)
    ii, jj = ii[ok], jj[ok]
    wi = (warp_instances(p_exp_t.select(ii), flow_t2_to_t) if warped is None else warped.select(ii))
    if merge == "union":
        merged = wi.masks | p_exp_t2.masks[jj]
    else:  # majority: 2 of {warped, matched, the class's pseudo-labels of t+δ}
        pseudo_cls = torch.stack([pseudo_t2.masks[pseudo_t2.labels == c].any(dim=0) for c in p_exp_t.labels[ii]])
        merged = (wi.masks.int() + p_exp_t2.masks[jj].int() + pseudo_cls.int()) >= 2
    return Instances(merged, mask_boxes(merged), p_exp_t.labels[ii].clone(), p_exp_t.scores[ii].clone())


def _combine(transferred: Instances, pseudo: Instances, use_iom_nms: bool, iom_threshold: float) -> Instances:
    """P_maskCon ∪ P_fIRN (pseudo-labels first), then IoM-NMS if on; empty masks dropped."""
    both = Instances.cat([pseudo, transferred])
    both = both.select(both.masks.flatten(1).any(dim=1))
    if use_iom_nms:
        both = both.select(iom_nms(both.masks, both.labels, both.scores, iom_threshold))
    return both


def maskconsist_targets(
    pred_t: Instances,
    pred_t2: Instances,
    pseudo_t: Instances,
    pseudo_t2: Instances,
    flow_t2_to_t,
    flow_t_to_t2,
    *,
    intra: bool = True,
    inter: bool = True,
    iom_nms: bool = True,
    iou_threshold: float = 0.5,
    iom_threshold: float = 0.5,
    top_k: int = 100,
    merge: str = "union",
) -> tuple[Instances, Instances]:
    """MaskConsist training labels of a frame pair (§3.3): P_maskCon ∪ P_fIRN, IoM-NMS, both frames.

    Steps: :func:`expand_predictions` on each frame, :func:`match_frames`,
    :func:`transfer_labels` in both directions (t -> t+δ with ``flow_t2_to_t``,
    t+δ -> t with ``flow_t_to_t2``), union with the original pseudo-labels,
    :func:`iom_nms`.

    Switches (the components of the ablation, Table 5); switching one off means:

    * ``intra=False``: P_exp = the top-k predictions only (no unions);
    * ``inter=False``: no inter-frame matching, hence nothing is transferred:
      each frame's labels are its own pseudo-labels (after IoM-NMS if on);
      ``intra`` then has no effect;
    * ``iom_nms=False``: the plain union of transferred and original labels
      (empty masks still dropped).

    Also the result when ``flow_t2_to_t`` or ``flow_t_to_t2`` is None (a
    one-frame video): the pseudo-labels, after IoM-NMS if on.

    Args:
        pred_t, pred_t2: the current model's predictions on frames t, t+δ
            (masks binarised, at frame resolution).
        pseudo_t, pseudo_t2: original pseudo-labels of t, t+δ.
        flow_t2_to_t: (H, W, 2) flow t+δ -> t on t+δ's grid (``backward[t]``).
        flow_t_to_t2: (H, W, 2) flow t -> t+δ on t's grid (``forward[t]``).
        iou_threshold: box IoU of intra-frame matching and of Alg. 1 line 4 (0.5).
        iom_threshold: IoM-NMS threshold (0.5).
        top_k: predictions per frame in P_exp (100).
        merge: Alg. 1 line 5, ``"union"`` (paper) or ``"majority"`` (:func:`transfer_labels`).

    Returns:
        ``(labels_t, labels_t2)`` as :class:`Instances`; :func:`to_target`
        turns each into a torchvision target dict.
    """
    if not inter or flow_t2_to_t is None or flow_t_to_t2 is None:
        h, w = pseudo_t.masks.shape[1:]
        h2, w2 = pseudo_t2.masks.shape[1:]
        return (
            _combine(empty_instances(h, w), pseudo_t, iom_nms, iom_threshold),
            _combine(empty_instances(h2, w2), pseudo_t2, iom_nms, iom_threshold),
        )

    def expand(pred: Instances, pseudo: Instances) -> Instances:
        if not intra:
            return pred.select(torch.argsort(pred.scores, descending=True, stable=True)[:top_k])
        return expand_predictions(
            pred.masks, pred.boxes, pred.labels, pred.scores, pseudo.boxes, pseudo.labels, iou_threshold, top_k
        )

    exp_t, exp_t2 = expand(pred_t, pseudo_t), expand(pred_t2, pseudo_t2)
    warped_t = warp_instances(exp_t, flow_t2_to_t)  # W_{t→t+δ}(P^t_exp), reused by matching and Alg. 1
    matches = match_frames(exp_t, exp_t2, flow_t2_to_t, warped=warped_t)
    to_t2 = transfer_labels(matches, exp_t, exp_t2, pseudo_t, flow_t2_to_t, iou_threshold, warped=warped_t,
                            merge=merge, pseudo_t2=pseudo_t2)
    back = [(j, i) for i, j in matches]
    to_t = transfer_labels(back, exp_t2, exp_t, pseudo_t2, flow_t_to_t2, iou_threshold, merge=merge, pseudo_t2=pseudo_t)
    return _combine(to_t, pseudo_t, iom_nms, iom_threshold), _combine(to_t2, pseudo_t2, iom_nms, iom_threshold)


def to_target(inst: Instances, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """torchvision detection target: ``{"boxes": (K, 4) float32, "labels": (K,) int64, "masks": (K, H, W) uint8}``."""
    return {
        "boxes": inst.boxes.to(device, torch.float32),
        "labels": inst.labels.to(device, torch.int64),
        "masks": inst.masks.to(device, torch.uint8),
    }
