"""MaskConsist label construction (Liu et al., CVPR 2021, §3.3, Alg. 1, App. A.2) on hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsvis.maskconsist.matching import (
    expand_predictions,
    hungarian,
    iom,
    iom_nms,
    make_instances,
    mask_boxes,
    maskconsist_targets,
    match_frames,
    transfer_labels,
    warp_instances,
)

H, W = 24, 32


def rect(y0, x0, y1, x1) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def const_flow(dx: float, dy: float) -> np.ndarray:
    f = np.zeros((H, W, 2), np.float32)
    f[..., 0], f[..., 1] = dx, dy
    return f


def test_iom_of_contained_mask_is_one():
    big, small, apart = rect(2, 2, 20, 20), rect(5, 5, 8, 8), rect(20, 25, 24, 32)
    m = iom(np.stack([big]), np.stack([small, apart]))
    assert m.shape == (1, 2)
    assert m[0, 0] == 1.0 and m[0, 1] == 0.0


def test_iom_nms_keeps_larger_nested_same_class_and_both_for_other_class():
    big, small = rect(2, 2, 20, 20), rect(5, 5, 10, 10)
    masks = np.stack([small, big])
    # the small one scores higher: the larger mask still wins
    keep = iom_nms(masks, np.array([1, 1]), np.array([0.9, 0.1]), 0.5)
    assert keep.tolist() == [1]
    keep = iom_nms(masks, np.array([1, 2]), np.array([0.9, 0.1]), 0.5)
    assert keep.tolist() == [0, 1]


def test_mask_boxes_cover_pixels():
    b = mask_boxes(torch.from_numpy(np.stack([rect(3, 4, 6, 9), np.zeros((H, W), bool)])))
    assert b.tolist() == [[4, 3, 9, 6], [0, 0, 0, 0]]


def test_warp_by_constant_flow_shifts_mask_and_box():
    inst = make_instances(np.stack([rect(4, 5, 10, 12)]), [1])
    # frame t+δ's pixel p comes from p + flow(p) in t: flow (-3, -2) moves content by (+3, +2)
    w = warp_instances(inst, const_flow(-3.0, -2.0))
    assert torch.equal(w.masks[0], torch.from_numpy(rect(6, 8, 12, 15)))
    assert w.boxes[0].tolist() == [8, 6, 15, 12]
    assert w.labels.tolist() == [1]


def test_hungarian_on_3x3():
    e = np.array([[0.9, 0.8, 0.0], [0.85, 0.0, 0.0], [0.0, 0.0, 0.0]])
    # greedy would take (0,0) and leave row 1 unmatched; the optimum is (0,1), (1,0); row 2 has no edge
    assert hungarian(e) == [(0, 1), (1, 0)]


def test_match_frames_uses_class_and_warp():
    t = make_instances(np.stack([rect(2, 2, 8, 8), rect(12, 12, 20, 20)]), [1, 2])
    t2 = make_instances(np.stack([rect(14, 14, 22, 22), rect(4, 4, 10, 10), rect(4, 4, 10, 10)]), [2, 2, 1])
    assert match_frames(t, t2, const_flow(-2.0, -2.0)) == [(0, 2), (1, 0)]


def test_intra_frame_expansion_adds_union():
    a, b, c = rect(2, 2, 12, 9), rect(2, 7, 12, 14), rect(15, 20, 20, 30)
    preds = make_instances(np.stack([a, b, c]), [1, 1, 1], [0.9, 0.8, 0.7])
    # pseudo-label covering a ∪ b: both predictions' boxes have IoU > 0.5 with it
    pseudo_box = torch.tensor([[2.0, 2.0, 14.0, 12.0]])
    exp = expand_predictions(preds.masks, preds.boxes, preds.labels, preds.scores, pseudo_box, torch.tensor([1]))
    assert len(exp) == 4
    assert torch.equal(exp.masks[3], torch.from_numpy(a | b))
    assert exp.boxes[3].tolist() == [2, 2, 14, 12] and exp.labels[3] == 1 and abs(float(exp.scores[3]) - 0.9) < 1e-6
    # a pseudo-label of another class adds nothing; top_k truncates first
    exp = expand_predictions(preds.masks, preds.boxes, preds.labels, preds.scores, pseudo_box, torch.tensor([2]))
    assert len(exp) == 3
    exp = expand_predictions(preds.masks, preds.boxes, preds.labels, preds.scores, pseudo_box, torch.tensor([1]), top_k=1)
    assert len(exp) == 1


def test_algorithm1_transfers_same_class_predictions_overlapping_a_pseudo_label():
    zero = const_flow(0.0, 0.0)
    # frame t predictions: 0 overlaps the class-1 pseudo-label; 1 is class 2 over the same place; 2 overlaps nothing
    p_t = make_instances(np.stack([rect(2, 2, 10, 10), rect(2, 2, 10, 10), rect(14, 20, 22, 30)]), [1, 2, 1])
    p_t2 = make_instances(np.stack([rect(3, 3, 11, 12), rect(3, 3, 11, 11), rect(14, 20, 22, 30)]), [1, 2, 1])
    pseudo_t = make_instances(np.stack([rect(2, 2, 10, 11)]), [1])
    matches = match_frames(p_t, p_t2, zero)
    assert matches == [(0, 0), (1, 1), (2, 2)]
    new = transfer_labels(matches, p_t, p_t2, pseudo_t, zero)
    assert len(new) == 1 and new.labels.tolist() == [1]
    assert torch.equal(new.masks[0], torch.from_numpy(rect(2, 2, 10, 10) | rect(3, 3, 11, 12)))  # Merge = union
    assert new.boxes[0].tolist() == [2, 2, 12, 11]


def test_maskconsist_targets_switches():
    zero = const_flow(0.0, 0.0)
    obj = rect(4, 4, 14, 14)
    pred = make_instances(np.stack([obj]), [1], [0.9])
    pseudo_t = make_instances(np.stack([obj]), [1])
    pseudo_t2 = make_instances(np.zeros((0, H, W), bool), np.zeros(0, int))  # the object is missed in t+δ
    lt, lt2 = maskconsist_targets(pred, pred, pseudo_t, pseudo_t2, zero, zero)
    assert len(lt) == 1 and len(lt2) == 1 and torch.equal(lt2.masks[0], torch.from_numpy(obj))
    _, lt2 = maskconsist_targets(pred, pred, pseudo_t, pseudo_t2, zero, zero, inter=False)
    assert len(lt2) == 0
    # a partial pseudo-label in t+δ: the transferred full mask contains it; IoM-NMS keeps only the full one
    partial = make_instances(np.stack([rect(4, 4, 14, 10)]), [1])
    _, lt2 = maskconsist_targets(pred, pred, pseudo_t, partial, zero, zero)
    assert len(lt2) == 1 and torch.equal(lt2.masks[0], torch.from_numpy(obj))
    _, lt2 = maskconsist_targets(pred, pred, pseudo_t, partial, zero, zero, iom_nms=False)
    assert len(lt2) == 2
    lt, lt2 = maskconsist_targets(pred, pred, pseudo_t, pseudo_t2, None, None)
    assert len(lt) == 1 and len(lt2) == 0


def test_majority_merge_is_a_pixel_vote_with_the_pseudo_label():
    """merge='majority': pixels held by 2 of {warped p_i^t, matched p_j^{t+δ}, pseudo-labels of t+δ of the class}."""
    zero = const_flow(0.0, 0.0)
    a, b = rect(4, 4, 14, 14), rect(4, 6, 14, 16)  # the same object, predicted 2 px apart in t and t+δ
    p_t, p_t2 = make_instances(np.stack([a]), [1], [0.9]), make_instances(np.stack([b]), [1], [0.8])
    pseudo_t = make_instances(np.stack([a]), [1])
    pseudo_t2 = make_instances(np.stack([rect(4, 5, 14, 15), rect(0, 0, 3, 3)]), [1, 2])  # class 2 never votes
    matches = match_frames(p_t, p_t2, zero)
    union = transfer_labels(matches, p_t, p_t2, pseudo_t, zero)
    vote = transfer_labels(matches, p_t, p_t2, pseudo_t, zero, merge="majority", pseudo_t2=pseudo_t2)
    assert union.masks[0].sum() == 10 * 12  # the union outgrows the 10 x 10 object
    np.testing.assert_array_equal(vote.masks[0].numpy(), rect(4, 5, 14, 15))  # 10 x 10: columns 5..14
    assert vote.boxes[0].tolist() == [5, 4, 15, 14] and vote.labels.tolist() == [1]
    # No pseudo-label of the class in t+δ: the vote is the two masks' intersection.
    none = make_instances(np.zeros((0, H, W), bool), np.zeros(0, int))
    vote = transfer_labels(matches, p_t, p_t2, pseudo_t, zero, merge="majority", pseudo_t2=none)
    np.testing.assert_array_equal(vote.masks[0].numpy(), a & b)
    # Through maskconsist_targets, the majority label replaces nothing it does not cover better.
    _, lt2 = maskconsist_targets(p_t, p_t2, pseudo_t, pseudo_t2, zero, zero, merge="majority")
    assert max(int(m.sum()) for m in lt2.masks) == 100
    with pytest.raises(ValueError, match="merge"):
        transfer_labels(matches, p_t, p_t2, pseudo_t, zero, merge="mean")
