"""Interrupted jobs resume from their last complete segment (--resume), never leaving a
half-written file under the final name; VFR timestamps survive the join."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import av
import numpy as np
import pytest

from tests import cli
from tests.cli import at_frame, call
from tests.media import describe, make_clip

VFR = [0, 40, 80, 200, 233, 300, 420, 460, 500, 540, 700, 740, 780, 820, 860, 900, 1000, 1040, 1080, 1120]


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("resume") / "vfr.mkv", pts=VFR, subtitles=["x", "y"], chapters=True)


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24").astype(np.int16) for f in c.decode(video=0)]


ARGS = ["-m", "bicubic", "-s", "2", "--preset", "ultrafast", "-q", "--segment-frames", "4"]


def test_interrupt_then_resume_matches_uninterrupted_run(vfr_clip, tmp_path, monkeypatch):
    ref = tmp_path / "ref.mkv"
    assert call(vfr_clip, ref, *ARGS)[0] == 0
    out = tmp_path / "out.mkv"
    with monkeypatch.context() as m:
        at_frame(m, 10)
        code, _, stderr = call(vfr_clip, out, *ARGS)
    assert code == 130 and "interrupted" in stderr and "--resume" in stderr
    assert not out.exists() and not list(tmp_path.glob(".out.upvid-*.partial*"))  # nothing under the final name
    work = tmp_path / ".out.mkv.upvid-partial"
    journal = json.loads((work / "journal.json").read_text())
    assert journal["frames_done"] == 8 and [s["frames"] for s in journal["segments"]] == [4, 4]
    assert sorted(p.name for p in work.iterdir()) == [".lock", "journal.json", "seg-000000.mkv", "seg-000001.mkv"]

    # a second upvid on the same OUT while the first one is still at it (holding the lock) is refused
    import fcntl

    fd = os.open(work / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        code, _, stderr = call(vfr_clip, out, *ARGS, "--resume")
        assert code == 4 and "another upvid process" in stderr, stderr
    finally:
        os.close(fd)

    code, stdout, stderr = call(vfr_clip, out, *ARGS, "--resume", "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["results"][0]["resumed_from"] == 8 and summary["results"][0]["frames"] == 20
    assert not work.exists()
    got, want = describe(out), describe(ref)
    for k in ("frames", "pts_s", "size", "chapters", "subtitles", "audio"):
        assert got[k] == want[k], k
    # bicubic is per-frame, so the resumed frames are the same pictures (up to encoder noise)
    for a, b in zip(decoded(out), decoded(ref)):
        assert np.abs(a - b).mean() < 2.0


def test_resume_of_a_recurrent_model_uses_warm_up_context(tmp_path, monkeypatch):
    """A recurrent model restarts one clip before the resume point and drops those outputs."""
    import dataclasses

    import torch

    from upvid.models.registry import get_record

    import upvid.job.run as job

    class FakeRecurrent(torch.nn.Module):
        """Stands in for a recurrent VSR net: (B, T, 3, H, W) -> (B, T, 3, 4H, 4W), plus a temporal mean."""

        family = "recurrent"
        scale = 4
        record = dataclasses.replace(get_record("bicubic"), name="fake", family="recurrent", frames=4, overlap=1)

        def forward(self, x):
            b, t = x.shape[:2]
            y = torch.nn.functional.interpolate(x.flatten(0, 1), scale_factor=4, mode="nearest").unflatten(0, (b, t))
            return 0.9 * y + 0.1 * y.mean(1, keepdim=True)

    def load(self):
        if self.net is None:
            self.device, self.dtype = torch.device("cpu"), torch.float32
            self.net = FakeRecurrent()
        return self.net

    monkeypatch.setattr(job.EngineFactory, "load", load)
    src = make_clip(tmp_path / "in.mp4", n=12, size=(16, 16), audio=())
    seen: list[int] = []
    real_run = job.run_pipeline

    def spy(source, engine, sink, **k):
        def frames():
            for f in source:
                seen.append(f.index)
                yield f
        return real_run(frames(), engine, sink, **k)

    monkeypatch.setattr(job, "run_pipeline", spy)
    args = ["-m", "basicvsr", "--chunk", "4", "--overlap", "1", "--preset", "ultrafast", "-q", "--segment-frames", "3"]
    out = tmp_path / "o.mp4"
    with monkeypatch.context() as m:
        at_frame(m, 7)
        r = call(src, out, *args)
        assert r[0] == 130, r
    seen.clear()
    code, stdout, stderr = call(src, out, *args, "--resume", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["results"][0]["resumed_from"] == 6
    assert describe(out)["frames"] == 12 and describe(out)["size"] == (64, 64)
    # clips of 4 sharing 1 start at 0, 3, 6, 9: the engine restarts at 3, the start of the clip that
    # holds frame 6 (so its outputs equal an uninterrupted run's); outputs 3..5 are dropped
    assert seen == list(range(3, 12))


def test_resume_refuses_other_settings_and_plain_run_starts_over(vfr_clip, tmp_path, monkeypatch):
    out = tmp_path / "o.mp4"
    with monkeypatch.context() as m:
        at_frame(m, 5)
        assert call(vfr_clip, out, *ARGS)[0] == 130
    code, _, stderr = call(vfr_clip, out, *ARGS, "--crf", "30", "--resume")
    assert code == 2 and "crf" in stderr and stderr.count("\n") == 1
    assert (tmp_path / ".o.mp4.upvid-partial").exists()
    code, stdout, stderr = call(vfr_clip, out, *ARGS, "--json")  # no --resume: discard and start over
    assert code == 0, stderr
    assert "discarding" in stderr and json.loads(stdout)["results"][0]["resumed_from"] == 0
    assert describe(out)["pts_s"] == [p / 1000 for p in VFR]


def test_resume_without_work_is_a_fresh_run(vfr_clip, tmp_path):
    code, stdout, stderr = call(vfr_clip, tmp_path / "o.mp4", *ARGS, "--resume", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["results"][0]["resumed_from"] == 0


def test_crash_while_joining_keeps_segments(vfr_clip, tmp_path, monkeypatch):
    """Disk full while joining the segments: the segments stay; --resume only re-joins them."""
    import upvid.job.run as job

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    out = tmp_path / "o.mkv"
    with monkeypatch.context() as m:
        m.setattr(job, "assemble", full)
        code, _, stderr = call(vfr_clip, out, *ARGS)
    assert code == 4 and "no space left" in stderr
    assert not out.exists()
    journal = json.loads((tmp_path / ".o.mkv.upvid-partial" / "journal.json").read_text())
    assert journal["complete"] and journal["frames_done"] == 20
    calls = []
    with monkeypatch.context() as m:
        m.setattr(job, "run_pipeline", lambda *a, **k: calls.append(1), raising=False)
        code, _, stderr = call(vfr_clip, out, *ARGS, "--resume")
    assert code == 0, stderr
    assert not calls and describe(out)["frames"] == 20


@pytest.mark.slow
def test_sigkill_then_resume(tmp_path):
    """A real process killed with SIGKILL mid-job; --resume finishes it."""
    src = make_clip(tmp_path / "in.mp4", n=40, size=(48, 32))
    out = tmp_path / "o.mp4"
    args = [src, out, "-m", "bicubic", "-s", "8", "--preset", "placebo", "--tile", "16", "--tile-overlap", "4", "-q",
            "--segment-frames", "2"]
    p = cli.spawn(*args, stdout=None)
    journal = tmp_path / ".o.mp4.upvid-partial" / "journal.json"
    deadline = time.time() + 90
    done = 0
    while time.time() < deadline and p.poll() is None:
        try:
            done = json.loads(journal.read_text())["frames_done"]
        except (OSError, ValueError):
            pass
        if done >= 4:
            break
        time.sleep(0.05)
    if p.poll() is not None:
        pytest.skip("the job finished before it could be killed (machine too fast)")
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert not out.exists()
    r = cli.run(*args, "--resume", "--json", "--preset", "ultrafast", timeout=120)
    # --preset differs from the killed run: refused (exit 2) ...
    assert r.returncode == 2, r.stderr
    r = cli.run(*args, "--resume", "--json", timeout=180)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)["results"][0]
    assert res["resumed_from"] >= 4 and res["frames"] == 40
    assert describe(out)["frames"] == 40
    assert not list(tmp_path.glob(".o.*"))


def test_image_folder_output_resumes(tmp_path, monkeypatch):
    src = make_clip(tmp_path / "in.mkv", pts=VFR[:10], audio=())
    out = tmp_path / "frames"
    with monkeypatch.context() as m:
        at_frame(m, 7, sink="image")
        assert call(src, out, *ARGS)[0] == 130
    assert not out.exists()
    work = tmp_path / ".frames.upvid-partial"
    assert json.loads((work / "journal.json").read_text())["frames_done"] == 4
    code, stdout, stderr = call(src, out, *ARGS, "--resume", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["results"][0]["resumed_from"] == 4
    assert sorted(p.name for p in out.iterdir()) == [f"{i:08d}.png" for i in range(10)]
    assert not work.exists()


N_EXACT = 22


@pytest.mark.parametrize("model,clip", [("basicvsr", ["--clip", "8", "--overlap", "2"]),
                                        ("iconvsr", ["--clip", "7", "--overlap", "2"])])
def test_recurrent_resume_is_frame_exact(tmp_path, monkeypatch, model, clip):
    """A recurrent job interrupted mid-way and resumed gives every frame of an uninterrupted run:
    decoding restarts at a clip of the original schedule (IconVSR: with its keyframes where they were)."""
    import numpy as np

    from upvid.io.images import read_image

    src = make_clip(tmp_path / "in.mkv", n=N_EXACT, size=(16, 16), audio=())
    args = ["-m", model, "--random-weights", "--tile", "0", "-q", "--segment-frames", "4", "--scene-cuts", "off",
            *clip]
    whole, out = tmp_path / "whole", tmp_path / "resumed"
    assert call(src, whole, *args)[0] == 0
    with monkeypatch.context() as m:
        at_frame(m, 17, sink="image")
        assert call(src, out, *args)[0] == 130
    code, stdout, stderr = call(src, out, *args, "--resume", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["results"][0]["resumed_from"] == 16
    for i in range(N_EXACT):
        a, b = read_image(whole / f"{i:08d}.png"), read_image(out / f"{i:08d}.png")
        assert np.array_equal(a, b), i
