"""Bad input and bad output: each kind gives one clear stderr line and its documented exit code,
and nothing is left under the output name."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from tests.cli import call, run as run_cli
from tests.media import describe, make_clip

ARGS = ["-m", "bicubic", "-s", "1", "--preset", "ultrafast", "-q"]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("good")
    return {
        "mp4": make_clip(d / "g.mp4", n=12),
        "mkv": make_clip(d / "g.mkv", n=12),
        "avi": make_clip(d / "g.avi", n=6, audio=("pcm_s16le",)),
    }


def _truncated_mp4(d, g):
    b = g["mp4"].read_bytes()  # PyAV writes the moov index at the end: half a file has none
    (d / "t.mp4").write_bytes(b[: len(b) // 2])
    return d / "t.mp4"


def _truncated_header(d, g):
    (d / "t.mkv").write_bytes(g["mkv"].read_bytes()[:200])
    return d / "t.mkv"


def _empty(d, g):
    (d / "e.mp4").write_bytes(b"")
    return d / "e.mp4"


def _random(d, g):
    (d / "r.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return d / "r.mp4"


def _text(d, g):
    (d / "notes.mkv").write_text("not a video\n" * 50)
    return d / "notes.mkv"


def _zero_frames(d, g):
    with av.open(str(d / "z.mkv"), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 32, 24, "yuv420p"
        c.start_encoding()
    return d / "z.mkv"


def _audio_only(d, g):
    with av.open(str(d / "a.m4a"), "w") as c:
        a = c.add_stream("aac", rate=48000)
        a.layout = "stereo"
        for i in range(5):
            f = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            f.sample_rate, f.pts = 48000, i * 1024
            c.mux(a.encode(f))
        c.mux(a.encode(None))
    return d / "a.m4a"


def _unknown_codec(d, g):
    (d / "u.avi").write_bytes(g["avi"].read_bytes().replace(b"H264", b"QQQQ").replace(b"h264", b"qqqq"))
    return d / "u.avi"


def _empty_dir(d, g):
    (d / "nothing").mkdir()
    return d / "nothing"


def _missing(d, g):
    return d / "missing.mp4"


@pytest.mark.parametrize("make,code,words", [
    (_truncated_mp4, 3, "not a video file"),
    (_truncated_header, 3, "cannot open"),
    (_empty, 3, "not a video file"),
    (_random, 3, "not a video file"),
    (_text, 3, "not a video file"),
    (_zero_frames, 3, ""),
    (_audio_only, 3, "no video stream (audio)"),
    (_unknown_codec, 3, "codec not supported"),
    (_empty_dir, 3, "no image files"),
    (_missing, 3, "no such file"),
], ids=lambda v: getattr(v, "__name__", str(v)).strip("_") if callable(v) else None)
def test_bad_input(make, code, words, good, tmp_path):
    src = make(tmp_path, good)
    out = tmp_path / "out" / "o.mp4"
    out.parent.mkdir()
    got, stdout, stderr = call(src, out, *ARGS)
    assert got == code, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("upvid: error: ") and words in lines[0], stderr
    assert stdout == "" and list(out.parent.iterdir()) == []


def test_truncated_mkv_keeps_what_is_there(good, tmp_path):
    b = good["mkv"].read_bytes()
    src = tmp_path / "half.mkv"
    src.write_bytes(b[: len(b) * 2 // 3])
    code, _, stderr = call(src, tmp_path / "o.mkv", "-m", "bicubic", "-s", "1", "--preset", "ultrafast")
    assert code == 0, stderr
    assert "warning" in stderr and "truncated or damaged" in stderr, stderr
    assert 1 <= describe(tmp_path / "o.mkv")["frames"] < 12


def test_corrupt_packets_mid_stream_are_skipped(good, tmp_path):
    b = bytearray(good["mkv"].read_bytes())
    rng = np.random.default_rng(1)
    for o in rng.integers(len(b) // 3, len(b) * 2 // 3, 40):
        b[o] ^= 0xFF
    src = tmp_path / "bad.mkv"
    src.write_bytes(bytes(b))
    code, _, stderr = call(src, tmp_path / "o.mkv", *ARGS)
    assert code == 0, stderr
    assert describe(tmp_path / "o.mkv")["frames"] >= 1


def test_huge_output_fails_before_running_out_of_memory(tmp_path):
    src = make_clip(tmp_path / "big.mp4", n=1, size=(2048, 2048), audio=())
    code, _, stderr = call(src, tmp_path / "o.mp4", "-m", "bicubic", "-s", "16", "-q")
    assert code == 7, stderr
    assert "32768x32768" in stderr and "GiB" in stderr and "--scale" in stderr
    assert not list(tmp_path.glob(".o*")) and not (tmp_path / "o.mp4").exists()


def test_output_larger_than_ffmpeg_frames_is_refused_before_work(tmp_path):
    """16384x16384 fits in memory but not in an FFmpeg frame: exit 8 with one line, nothing written."""
    src = make_clip(tmp_path / "big.mp4", n=1, size=(1024, 1024), audio=())
    code, _, stderr = call(src, tmp_path / "o.mp4", "-m", "bicubic", "-s", "16", "-q")
    assert code == 8, stderr
    assert "16384x16384" in stderr and "--scale" in stderr and len(stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob(".o*")) and not (tmp_path / "o.mp4").exists()


def test_memory_cap_from_environment(good, tmp_path, monkeypatch):
    monkeypatch.setenv("UPVID_MAX_MEMORY", "10000")
    code, _, stderr = call(good["mp4"], tmp_path / "o.mp4", *ARGS)
    assert code == 7 and "0.0 GiB of host memory" in stderr
    monkeypatch.setenv("UPVID_MAX_MEMORY", "lots")
    assert call(good["mp4"], tmp_path / "o.mp4", *ARGS)[0] == 2


@pytest.mark.parametrize("extra,code,words", [
    (["--codec", "no-such-encoder"], 8, "unknown encoder"),
    (["--codec", "libsvtav1", "--pix-fmt", "yuv444p"], 8, "does not take"),
    (["--codec", "libvpx-vp9", "--bit-depth", "10"], 8, "10-bit"),
    (["--bit-depth", "12"], 2, "--bit-depth"),
    (["--bit-depth", "10", "--pix-fmt", "yuv444p"], 2, "not both"),
    (["--fps", "0"], 2, "--fps"),
    (["--segment-frames", "0"], 2, "--segment"),
])
def test_bad_encoder_options(good, tmp_path, extra, code, words):
    got, _, stderr = call(good["mp4"], tmp_path / "o.mp4", *ARGS, *extra)
    assert got == code and words in stderr and stderr.count("\n") == 1, stderr
    assert list(tmp_path.iterdir()) == []


def test_container_that_cannot_hold_the_codec(good, tmp_path):
    got, _, stderr = call(good["mp4"], tmp_path / "o.webm", *ARGS, "--codec", "libx264")
    assert got == 8 and stderr.count("\n") == 1, stderr
    assert list(tmp_path.iterdir()) == []


def test_output_problems(good, tmp_path):
    code, _, stderr = call(good["mp4"], tmp_path / "no" / "such" / "o.mp4", *ARGS)
    assert code == 4 and "no such directory" in stderr
    (tmp_path / "d.mp4").mkdir()  # a folder named like a video is not an image-folder OUT (issue 22)
    (tmp_path / "d.mp4" / "mine.txt").write_text("x")
    code, _, stderr = call(good["mp4"], tmp_path / "d.mp4", *ARGS)
    assert code == 4 and "is a directory" in stderr
    (tmp_path / "frames_out").mkdir()  # a folder without a video suffix is one, and a non-empty one is kept
    (tmp_path / "frames_out" / "mine.txt").write_text("x")
    code, _, stderr = call(good["mp4"], tmp_path / "frames_out", *ARGS)
    assert code == 4 and "not empty" in stderr
    (tmp_path / "frames").write_text("a file")
    code, _, stderr = call(good["mp4"], tmp_path / "frames", *ARGS)
    assert code == 4 and "is a file" in stderr
    code, _, stderr = call(good["mp4"], good["mp4"], *ARGS, "--overwrite")
    assert code == 2 and "overwrite the input" in stderr


def _mount_tmpfs(path: Path, size: str, ro: bool = False) -> bool:
    path.mkdir(exist_ok=True)
    opts = f"size={size}" + (",ro" if ro else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True)


def test_unwritable_output_folder(good, tmp_path):
    d = tmp_path / "ro"
    if os.geteuid() != 0:
        d.mkdir()
        d.chmod(0o555)
    elif not _mount_tmpfs(d, "1m", ro=True):
        pytest.skip("running as root and cannot mount a read-only tmpfs")
    try:
        code, _, stderr = call(good["mp4"], d / "o.mp4", *ARGS)
        assert code == 4, stderr
        assert stderr.count("\n") == 1 and ("permission denied" in stderr or "Read-only" in stderr), stderr
    finally:
        if os.geteuid() == 0:
            _umount(d)


def test_disk_full_on_a_small_tmpfs(tmp_path):
    d = tmp_path / "small"
    if not _mount_tmpfs(d, "96k"):
        pytest.skip("cannot mount a tmpfs here (needs root); see test_disk_full_reported_from_the_writer")
    try:
        src = make_clip(tmp_path / "in.mp4", n=30, size=(128, 96), audio=())
        code, _, stderr = call(src, d / "o.mkv", "-m", "bicubic", "-s", "4", "--preset", "ultrafast", "--crf", "0",
                               "-q", "--segment-frames", "1000")
        assert code == 4, stderr
        assert "no space left on device" in stderr and stderr.count("upvid: error") == 1
        assert not (d / "o.mkv").exists() and not [p for p in d.iterdir() if "partial" in p.name and p.is_file()]
    finally:
        _umount(d)


def test_disk_full_reported_from_the_writer(good, tmp_path, monkeypatch):
    import upvid.io.writer as writer

    def full(self, frame):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer.VideoWriter, "_encode", full)
    code, _, stderr = call(good["mp4"], tmp_path / "o.mp4", *ARGS)
    assert code == 4 and "no space left on device" in stderr, stderr
    assert list(tmp_path.iterdir()) == []


def test_unreadable_input(good, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    src = tmp_path / "locked.mp4"
    shutil.copy(good["mp4"], src)
    src.chmod(0)
    code, _, stderr = call(src, tmp_path / "o.mp4", *ARGS)
    assert code == 3 and "permission denied" in stderr


def test_subprocess_exit_codes(good, tmp_path):
    """The same through a real process: one line, documented code, no traceback."""
    (tmp_path / "x.mp4").write_bytes(b"\x00" * 100)
    r = run_cli(tmp_path / "x.mp4", tmp_path / "o.mp4", *ARGS)
    assert r.returncode == 3 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    r = run_cli(good["mp4"], tmp_path / "o.mp4", *ARGS, "--codec", "nope")
    assert r.returncode == 8 and r.stderr.count("\n") == 1
