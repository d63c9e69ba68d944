"""End to end through the `upvid` command: real PyAV-encoded clips in, checked video + audio out."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from tests import cli
from tests.data import need, VIDEOS


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return cli.run(*args, timeout=timeout)


def packets(path: Path, kind: str) -> list[tuple[int | None, bytes]]:
    with av.open(str(path)) as c:
        stream = c.streams.audio[0] if kind == "audio" else c.streams.video[0]
        return [(p.pts, bytes(p)) for p in c.demux(stream) if p.size]


def video_summary(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(v))
        return {
            "size": (v.codec_context.width, v.codec_context.height),
            "frames": len(frames),
            "fps": v.average_rate,
            "pts_s": [round(float(f.pts * f.time_base), 4) for f in frames],
            "duration": c.duration,
        }


def test_bicubic_x4_keeps_frames_fps_timestamps_and_audio(calendar_clip, tmp_path):
    out = tmp_path / "out.mp4"
    r = run(str(calendar_clip), str(out), "--model", "bicubic", "--scale", "4", "--tile", "64", "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""  # stdout stays clean for scripts
    src, dst = video_summary(calendar_clip), video_summary(out)
    assert dst["size"] == (src["size"][0] * 4, src["size"][1] * 4)
    assert dst["frames"] == src["frames"] == 12
    assert dst["fps"] == src["fps"]
    assert dst["pts_s"] == src["pts_s"]
    assert abs(dst["duration"] - src["duration"]) < 50_000  # microseconds
    assert packets(out, "audio") == packets(calendar_clip, "audio")  # copied bit for bit
    assert not list(tmp_path.glob(".*partial*"))


def test_upscaled_content_matches_input(calendar_clip, tmp_path):
    """The output is the bicubic upscale of the decoded input (within codec loss).

    The input's 4:2:0 planes are converted in the engine (linear chroma, exact matrix: see
    test_colour), so the reference is the same conversion, upscaled with torch's bicubic.
    """
    import torch

    from tests.media import engine_rgb

    out = tmp_path / "out.mkv"
    assert run(str(calendar_clip), str(out), "--model", "bicubic", "--scale", "2", "-q", "--crf", "0",
               "--codec", "libx264", "--pix-fmt", "yuv444p").returncode == 0
    with av.open(str(calendar_clip)) as c:
        lr = engine_rgb(next(c.decode(video=0))) * 255
    with av.open(str(out)) as c:
        hr = next(c.decode(video=0)).to_ndarray(format="rgb24")
    exp = torch.nn.functional.interpolate(lr, scale_factor=2, mode="bicubic").clamp(0, 255).round()[0]
    exp = exp.permute(1, 2, 0).numpy()
    mse = np.mean((hr.astype(float) - exp) ** 2)
    assert 10 * np.log10(255**2 / mse) > 38  # only colour-conversion rounding separates them


def test_real_phone_clip_with_audio(realshort, tmp_path):
    out = tmp_path / "rs.mp4"
    r = run(str(realshort), str(out), "--model", "bicubic", "--scale", "2", "-q")
    assert r.returncode == 0, r.stderr
    assert video_summary(out)["frames"] == video_summary(realshort)["frames"]
    assert packets(out, "audio") == packets(realshort, "audio")


def test_audio_transcoded_when_container_refuses_it(tmp_path):
    """Vorbis cannot go into MP4: it is transcoded (to AAC) instead of dropped."""
    src = need(VIDEOS / "renpy" / "oa4_launch.webm")
    out = tmp_path / "o.mp4"
    r = run(str(src), str(out), "--model", "bicubic", "--scale", "1", "-q", "--preset", "ultrafast")
    assert r.returncode == 0, r.stderr
    with av.open(str(out)) as c:
        assert c.streams.audio and c.streams.audio[0].codec_context.name == "aac"
        assert abs(c.streams.audio[0].duration * c.streams.audio[0].time_base -
                   c.streams.video[0].duration * c.streams.video[0].time_base) < 0.5


@pytest.mark.parametrize(
    "make_input,extra,code",
    [
        (lambda d: d / "missing.mp4", [], 3),
        (lambda d: (d / "notes.txt").write_text("not a video") and d / "notes.txt", [], 3),
        (lambda d: d, [], 3),  # a directory without images
        (lambda d: None, ["--model", "no-such-model"], 5),
        (lambda d: None, ["--scale", "3", "--model", "bicubic", "--tile", "16", "--tile-overlap", "16"], 2),
        (lambda d: None, ["--codec", "no-such-encoder"], 8),
        (lambda d: None, ["--crf", "high"], 2),
        (lambda d: None, ["--device", "cuda:7"], 2),
    ],
)
def test_bad_input_exit_codes(make_input, extra, code, calendar_clip, tmp_path):
    src = make_input(tmp_path) or calendar_clip
    out = tmp_path / "o.mp4"
    args = [str(src), str(out), "--model", "bicubic", *extra] if "--model" not in extra else [str(src), str(out), *extra]
    r = run(*args)
    if code == 2 and "--device" in extra:
        import torch

        if torch.cuda.device_count() > 7:
            pytest.skip("this machine has 8 GPUs")
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("upvid: "), r.stderr
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_existing_output_is_kept_without_overwrite(calendar_clip, tmp_path):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"precious")
    r = run(str(calendar_clip), str(out), "--model", "bicubic")
    assert r.returncode == 4 and out.read_bytes() == b"precious"
    assert "--overwrite" in r.stderr
    r = run(str(calendar_clip), str(out), "--model", "bicubic", "--overwrite", "-q")
    assert r.returncode == 0 and video_summary(out)["frames"] == 12


def test_interrupt_leaves_no_partial_output(calendar_clip, tmp_path):
    import signal
    import time

    out = tmp_path / "o.mp4"
    # a deliberately slow job (tiny tiles, slowest x264 preset); SIGINT restored in case the
    # test runner was started in the background with SIGINT ignored
    p = cli.spawn(calendar_clip, out, "--model", "bicubic", "--scale", "8", "--tile", "16", "--tile-overlap", "4",
                  "--preset", "placebo", "-q", stdout=None,
                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".*partial*")):
        time.sleep(0.05)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    assert "interrupted" in stderr
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_models_lists_registry_and_cache_state():
    import json

    r = run("models", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["bicubic"]["weights"] == "none needed" and rows["bicubic"]["scale"] == "any"
