"""``--encoder ffmpeg`` (issue 18): the HR frames go to an external ffmpeg binary, upvid joins and muxes.

The binary is Debian's ``ffmpeg`` when it is on PATH, else the one the test extra installs
(imageio-ffmpeg, a static FFmpeg build); without either the real-encoder tests skip and say so.
"""

from __future__ import annotations

import shutil
from fractions import Fraction

import numpy as np
import pytest

from tests import cli
from tests.media import describe, make_clip


def _ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg
    except ImportError:
        pytest.skip("no ffmpeg binary: neither Debian's ffmpeg on PATH nor imageio-ffmpeg (the test extra)")
    return imageio_ffmpeg.get_ffmpeg_exe()


def test_external_x264_keeps_frames_vfr_timestamps_and_audio(realshort, tmp_path, monkeypatch):
    monkeypatch.setenv("UPVID_FFMPEG", _ffmpeg())
    out = tmp_path / "out.mkv"
    code, _, err = cli.call(realshort, out, "-m", "bicubic", "-s", "2", "--encoder", "ffmpeg", "--codec", "libx264",
                            "--preset", "ultrafast", "--segment-frames", "10", "-q")
    assert code == 0, err
    src, dst = describe(realshort), describe(out)
    assert dst["codec"] == "h264" and dst["size"] == (640, 480) and dst["frames"] == src["frames"] == 36
    assert dst["pts_s"] == src["pts_s"]
    assert dst["audio"] == src["audio"] and dst["audio"]
    a = dst["first_rgb"][0].astype(float)  # the model's picture, not something else: near bicubic of the input
    assert a.std() > 10


def test_external_encoder_keeps_variable_frame_times(tmp_path, monkeypatch):
    monkeypatch.setenv("UPVID_FFMPEG", _ffmpeg())
    pts = [0, 40, 80, 200, 240, 400, 440, 480]  # ms: gaps of 40, 120, 160 ms
    src = make_clip(tmp_path / "vfr.mp4", pts=pts, time_base=Fraction(1, 1000), size=(32, 24))
    out = tmp_path / "out.mp4"
    code, _, err = cli.call(src, out, "-m", "bicubic", "-s", "2", "--encoder", "ffmpeg", "--codec", "libx264", "-q",
                            "--segment-frames", "3")
    assert code == 0, err
    assert np.allclose(describe(out)["pts_s"], [p / 1000 for p in pts], atol=0.002)


def test_without_an_ffmpeg_binary_is_exit_8_naming_it(realshort, tmp_path, monkeypatch):
    monkeypatch.setenv("UPVID_FFMPEG", str(tmp_path / "no-such-ffmpeg"))
    code, _, err = cli.call(realshort, tmp_path / "o.mkv", "-m", "bicubic", "--encoder", "ffmpeg")
    assert code == 8 and "needs an ffmpeg binary" in err and "no-such-ffmpeg" in err
    assert err.count("\n") == 1 and not (tmp_path / "o.mkv").exists()
    monkeypatch.delenv("UPVID_FFMPEG")
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    code, _, err = cli.call(realshort, tmp_path / "o.mkv", "-m", "bicubic", "--encoder", "ffmpeg")
    assert code == 8 and "no 'ffmpeg' on PATH" in err


def test_an_encoder_the_machine_cannot_run_is_exit_8_with_ffmpegs_reason(realshort, tmp_path, monkeypatch):
    """h264_nvenc is in the binary but needs an NVIDIA GPU and driver: ffmpeg's own reason, exit 8."""
    monkeypatch.setenv("UPVID_FFMPEG", _ffmpeg())
    code, _, err = cli.call(realshort, tmp_path / "o.mkv", "-m", "bicubic", "--encoder", "ffmpeg", "--codec",
                            "h264_nvenc", "--frames", "0:4")
    if code == 0:
        pytest.skip("this machine has a working NVENC")
    assert code == 8 and "ffmpeg (h264_nvenc)" in err, err
    assert err.strip().count("\n") == 0 and not (tmp_path / "o.mkv").exists()
