"""HDR10 (issue 18): PQ / BT.2020 tags and the mastering-display and light-level metadata survive a job."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from tests.cli import call
from upvid.io.probe import probe

MASTER = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"


def make_hdr10(path: Path, frames: int = 4) -> Path:
    """A 10-bit HEVC clip as an HDR10 master is delivered: BT.2020 + PQ tags, ST 2086 + MaxCLL/MaxFALL SEI."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx265", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p10le"
        cc = s.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace = 9, 16, 9  # BT.2020, SMPTE ST 2084 (PQ), BT.2020 NCL
        cc.options = {"x265-params": f"log-level=error:hdr10=1:repeat-headers=1:master-display={MASTER}:"
                                     "max-cll=1000,400:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc"}
        rng = np.random.default_rng(0)
        for i in range(frames):
            rgb = (rng.random((48, 64, 3)) * 40000).astype(np.uint16)
            f = av.VideoFrame.from_ndarray(rgb, format="rgb48le").reformat(format="yuv420p10le")
            f.pts = i
            out.mux(s.encode(f))
        out.mux(s.encode())
    return path


def _same(a, b, tol: float) -> bool:
    return a is not None and b is not None and np.allclose(np.array(a, dtype=float), np.array(b, dtype=float), atol=tol)


@pytest.mark.parametrize("codec,tol", [(None, 1e-9), ("libsvtav1", 1e-4)])
def test_hdr10_metadata_round_trip(tmp_path, codec, tol):
    src = make_hdr10(tmp_path / "hdr.mkv")
    meta = probe(src).hdr
    assert meta.luminance == (0.0001, 1000.0) and (meta.max_cll, meta.max_fall) == (1000, 400)
    out = tmp_path / "out.mkv"
    args = ["--codec", codec, "--preset", "12"] if codec else []  # default: HEVC in, libx265 10-bit out
    code, _, err = call(src, out, "-m", "bicubic", "-s", "2", "-q", *args)
    assert code == 0, err
    assert "is HDR (PQ (SMPTE ST 2084)): the model sees PQ" in err  # the warning, once
    info = probe(out)
    assert (info.color_primaries, info.color_trc, info.colorspace) == (9, 16, 9) and info.bit_depth == 10
    got = info.hdr
    assert got is not None
    assert _same(got.primaries, meta.primaries, tol) and _same(got.white, meta.white, tol)
    assert _same(got.luminance, meta.luminance, max(tol, 1e-4 if codec else 0)) and got.max_cll == 1000
    assert got.max_fall == 400


def test_hdr10_into_an_8_bit_h264_output_says_what_is_lost(tmp_path):
    src = make_hdr10(tmp_path / "hdr.mkv", frames=2)
    code, _, err = call(src, tmp_path / "out.mp4", "-m", "bicubic", "-s", "2", "-q", "--codec", "libx264",
                        "--bit-depth", "8")
    assert code == 0, err
    assert "HDR10 needs a 10-bit libx265 or libsvtav1 output" in err
    assert probe(tmp_path / "out.mp4").hdr is None
