"""Middlebury .flo and PFM readers/writers on real FlyingChairs / FlyingThings3D crops."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared

from wsvis.io.flowfile import read_flo, read_pfm, write_flo
from wsvis.io.images import read_image


def test_read_flo_fixture_matches_source_md():
    flow = read_flo(shared("fixtures", "flow_formats", "00001_flow.flo"))
    assert flow.shape == (50, 50, 2) and flow.dtype == np.float32
    mag = np.linalg.norm(flow, axis=2)
    # SOURCE.md: mean |flow| 1.78 px, max 12.5
    assert mag.mean() == pytest.approx(1.78, abs=0.01)
    assert mag.max() == pytest.approx(12.5, abs=0.05)


def test_flo_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 5, (7, 11, 2)).astype(np.float32)
    path = tmp_path / "f.flo"
    write_flo(path, flow)
    assert path.stat().st_size == 12 + 7 * 11 * 2 * 4
    np.testing.assert_array_equal(read_flo(path), flow)


def test_flo_bad_magic_and_size_name_the_file(tmp_path):
    bad = tmp_path / "bad.flo"
    bad.write_bytes(np.array([1.0], "<f4").tobytes() + np.array([2, 2], "<i4").tobytes() + bytes(32))
    with pytest.raises(ValueError, match="bad.flo.*magic"):
        read_flo(bad)
    short = tmp_path / "short.flo"
    write_flo(short, np.zeros((4, 4, 2), np.float32))
    short.write_bytes(short.read_bytes()[:-4])
    with pytest.raises(ValueError, match="short.flo"):
        read_flo(short)


def test_write_flo_rejects_wrong_shape(tmp_path):
    with pytest.raises(ValueError):
        write_flo(tmp_path / "x.flo", np.zeros((4, 4, 3), np.float32))


def test_read_pfm_occlusion_weights_match_png_orientation():
    folder = shared("fixtures", "flow_formats")
    occ = read_pfm(folder / "0000000-occ_weights_01.pfm")
    assert occ.shape == (50, 50) and occ.dtype == np.float32
    png = read_image(folder / "0000000-occ_01.png")[..., 0] > 0
    # rows are flipped bottom-to-top on reading, so the PFM equals the PNG mask
    np.testing.assert_array_equal(occ > 0.5, png)


@pytest.mark.parametrize("little_endian", [True, False])
def test_read_pfm_colour_and_endianness(tmp_path, little_endian):
    data = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    order = "<" if little_endian else ">"
    scale = b"-1.0" if little_endian else b"1.0"
    path = tmp_path / "c.pfm"
    path.write_bytes(b"PF\n3 2\n" + scale + b"\n" + data[::-1].astype(order + "f4").tobytes())
    out = read_pfm(path)
    assert out.shape == (2, 3, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, data)


def test_read_pfm_bad_header(tmp_path):
    path = tmp_path / "x.pfm"
    path.write_bytes(b"P6\n1 1\n255\n\x00\x00\x00")
    with pytest.raises(ValueError, match="x.pfm"):
        read_pfm(path)
