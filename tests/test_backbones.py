"""The "random weights" warning: given when a model starts untrained, not when a trained model.pt is loaded."""

import logging

import torch

from wsvis.cam.net import CAMNet
from wsvis.cam.train import load_cam_model
from wsvis.irn.net import IRNet
from wsvis.irn.train import load_irn
from wsvis.models.condinst import ARCH_KEYS, build_condinst, load_condinst
from wsvis.models.maskrcnn import build_maskrcnn, load_maskrcnn


def _random_weight_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "random weights" in r.getMessage()]


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_untrained_models_warn_and_loaded_models_do_not(tmp_path, caplog):
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING):
        irn = IRNet("mobilenet_v2", "none")
        cam = CAMNet("mobilenet_v2", 2, weights="none")
        det = build_maskrcnn(3, backbone="mobilenet_v2", weights="none", min_size=64, max_size=96)
        cond = build_condinst(3, backbone="mobilenet_v2", weights="none", min_size=64, max_size=96)
    assert len(_random_weight_warnings(caplog)) == 4

    torch.save({"model": irn.state_dict(), "backbone": "mobilenet_v2"}, tmp_path / "irn.pt")
    torch.save({"model": cam.state_dict(), "backbone": "mobilenet_v2", "categories": ["a", "b"]}, tmp_path / "cam.pt")
    torch.save(
        {"model": det.state_dict(), "backbone": "mobilenet_v2", "min_size": 64, "max_size": 96,
         "frozen_bn": False, "categories": ["a", "b"]},
        tmp_path / "det.pt",
    )
    arch = dict(backbone="mobilenet_v2", min_size=64, max_size=96, mask_channels=8, branch_channels=128,
                head_channels=16, head_convs=4, two_stream=False, detection_fusion="sum", mask_fusion="concat",
                frozen_bn=False, mask_stride=8, fpn_channels=256)
    assert set(arch) == set(ARCH_KEYS)
    torch.save({"model": cond.state_dict(), "categories": ["a", "b"], **arch}, tmp_path / "cond.pt")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        irn2 = load_irn(tmp_path / "irn.pt")
        cam2 = load_cam_model(tmp_path / "cam.pt")
        det2, _ = load_maskrcnn(tmp_path / "det.pt")
        cond2, _ = load_condinst(tmp_path / "cond.pt")
    assert _random_weight_warnings(caplog) == []
    assert _same_weights(irn, irn2) and _same_weights(cam, cam2) and _same_weights(det, det2)
    assert _same_weights(cond, cond2)

    # The silence ends with the loader: a later untrained model warns again.
    with caplog.at_level(logging.WARNING):
        IRNet("mobilenet_v2", "none")
    assert len(_random_weight_warnings(caplog)) == 1
