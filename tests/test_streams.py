"""Pipes (IN/OUT ``-``), the Python API and interlaced sources (issue 18), on real PyAV-encoded clips.

The other end of each pipe is a real process: a PyAV remuxer standing in for ``ffmpeg -f nut -``
or ``vspipe -c y4m`` (no ffmpeg binary is needed), and upvid itself runs as ``python -m upvid``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from tests import cli
from tests.cli import call
from tests.data import REPO, VIDEOS, need
from tests.media import describe

#: Writes IN to stdout as FORMAT: video decoded and sent as raw pictures (y4m) or copied (nut,
#: matroska), audio copied - what ``ffmpeg -i IN -f FORMAT -`` does for these tests.
SENDER = r"""
import sys, av
src, fmt = sys.argv[1], sys.argv[2]
with av.open(src) as c:
    out = av.open(sys.stdout.buffer, "w", format=fmt)
    v = c.streams.video[0]
    if fmt == "yuv4mpegpipe":
        s = out.add_stream("rawvideo", rate=v.average_rate)
        s.width, s.height, s.pix_fmt = v.codec_context.width, v.codec_context.height, "yuv420p"
        for i, f in enumerate(c.decode(v)):
            f = f.reformat(format="yuv420p")
            f.pts = i
            out.mux(s.encode(f))
        out.mux(s.encode())
    else:
        streams = [v, *c.streams.audio]
        outs = {x.index: out.add_stream_from_template(x) for x in streams}
        for p in c.demux(*streams):
            if p.dts is None:
                continue
            p.stream = outs[p.stream.index]
            out.mux(p)
    out.close()
"""


def _sender(src: Path, fmt: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SENDER, str(src), fmt], stdout=subprocess.PIPE)


def _pipeline(src: Path, fmt: str, *args, out_file: Path) -> tuple[int, str]:
    """SENDER | upvid ARGS > out_file; returns upvid's exit code and stderr."""
    send = _sender(src, fmt)
    with open(out_file, "wb") as f:
        up = cli.spawn(*args, stdin=send.stdout, stdout=f)
        send.stdout.close()
        _, err = up.communicate(timeout=300)
    send.wait(timeout=60)
    return up.returncode, err


def _audio_packets(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(c.streams.audio[0]) if p.size) if c.streams.audio else 0


@pytest.mark.parametrize("fmt,name", [("nut", "nut"), ("matroska", "matroska,webm"), ("mpegts", "mpegts")])
def test_stream_in_stream_out_keeps_frames_timestamps_and_audio(realshort, tmp_path, fmt, name):
    """`sender -f nut - | upvid - - --format F > out`: every frame, its time, the audio's packets."""
    out = tmp_path / f"out.{fmt}"
    rc, err = _pipeline(realshort, "nut", "-", "-", "-m", "bicubic", "-s", "2", "--format", fmt, out_file=out)
    assert rc == 0, err
    assert re.fullmatch(r"upvid: - -> -: ok, 36 frames, 320x240->640x480 .*\n", err), err  # stderr only
    src, dst = describe(realshort), describe(out)
    assert dst["format"] == name and dst["size"] == (640, 480) and dst["frames"] == src["frames"] == 36
    shift = dst["pts_s"][0] - src["pts_s"][0]  # mpegts starts its clock at 1.4 s; the spacing is kept
    assert np.allclose(np.array(dst["pts_s"]) - shift, src["pts_s"], atol=0.002)
    assert [a[0] for a in dst["audio"]] == ["aac"] and _audio_packets(out) == _audio_packets(realshort) == 55


def test_y4m_on_stdin_to_a_file(realshort, tmp_path):
    """`vspipe -c y4m script.vpy - | upvid - out.mkv`: y4m carries no audio; frames and rate are kept."""
    out = tmp_path / "out.mkv"
    send = _sender(realshort, "yuv4mpegpipe")
    r = cli.run("-", out, "-m", "bicubic", "-s", "2", "-q", stdin=send.stdout, timeout=300)
    send.wait(timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    dst = describe(out)
    assert dst["size"] == (640, 480) and dst["frames"] == 36 and dst["codec"] == "h264"
    assert np.allclose(np.diff(dst["pts_s"]), 1 / 30, atol=0.002)  # the y4m header's 30 fps
    assert not list(tmp_path.glob(".*"))  # written under a temporary name, renamed


def test_y4m_out_is_raw_pictures_of_the_model(realshort, tmp_path):
    out = tmp_path / "out.y4m"
    rc, err = _pipeline(realshort, "nut", "-", "-", "-m", "bicubic", "-s", "2", "--format", "y4m", "-q", out_file=out)
    assert rc == 0 and err == "upvid: warning: the yuv4mpegpipe stream cannot carry audio aac; left out\n", err
    assert out.read_bytes().startswith(b"YUV4MPEG2 W640 H480 ")
    assert describe(out)["frames"] == 36


def test_a_closed_downstream_pipe_is_exit_9_without_a_traceback(realshort):
    up = cli.spawn(realshort, "-", "-m", "bicubic", "-s", "2", "--format", "nut", "-q", text=False)
    up.stdout.read(5000)  # the reader takes a little, then goes away
    up.stdout.close()
    err = up.stderr.read().decode()
    up.wait(timeout=120)
    assert up.returncode == 9, err
    assert err.count("\n") == 1 and err.startswith("upvid: error: the program reading upvid's output"), err


@pytest.mark.parametrize("args,code,message", [
    (["--resume"], 2, "--resume needs IN and OUT to be files"),
    (["--json"], 2, "--json prints on stdout"),
    (["--format", "webm"], 2, "--format must be one of"),
    (["--frames", "0:4"], 2, "--start/--duration/--frames need IN and OUT to be files"),
])
def test_pipe_usage_errors(realshort, args, code, message):
    rc, out, err = call(realshort, "-", "-m", "bicubic", *args)
    assert rc == code and message in err and out == "", err


def test_garbage_on_stdin_is_an_input_error():
    r = cli.run("-", "-", "-m", "bicubic", input="not a video\n" * 100, timeout=120)
    assert r.returncode == 3 and "--input-format" in r.stderr and r.stdout == ""


# -- the Python API ----------------------------------------------------------------------------
def _readme_block(marker: str) -> str:
    text = (REPO / "README.md").read_text()
    m = re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", text, re.S)
    assert m, f"README has no {marker} block"
    return m.group(1)


def test_readme_api_example_runs(tmp_path, monkeypatch, capsys):
    """The README's Python example, as written (run where the repo's sample is at its README path)."""
    (tmp_path / "upvid" / "data").mkdir(parents=True)
    (tmp_path / "upvid" / "data" / "realshort.mp4").symlink_to(REPO / "upvid" / "data" / "realshort.mp4")
    monkeypatch.chdir(tmp_path)
    exec(compile(_readme_block("api-example"), "README.md", "exec"), {})
    printed = capsys.readouterr().out.split()
    assert printed[:2] == ["4", "320x240->1280x960"]
    assert describe(tmp_path / "realshort_x4.mkv")["frames"] == 4
    assert "3" in printed  # the exit code of the InputError


def test_api_upscale_frames_equals_the_cli_engine():
    import upvid
    from upvid.engine.upscale import upscale_frames as engine_frames

    net = upvid.load_model("bicubic", scale=2, device="cpu")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (12, 16, 3), dtype=np.uint8) for _ in range(3)]
    out = list(upvid.upscale_frames(frames, model=net, device="cpu"))
    ref = list(engine_frames(net, frames))
    assert len(out) == 3 and all(np.array_equal(a, b) for a, b in zip(out, ref)) and out[0].shape == (24, 32, 3)
    with pytest.raises(upvid.InputError, match="frame 1"):
        list(upvid.upscale_frames([frames[0], frames[0][:6]], model=net))
    with pytest.raises(upvid.UsageError, match="unknown option"):
        upvid.upscale("a.mp4", "b.mkv", model="bicubic", no_such_option=1)
    assert upvid.OutputError.exit_code == 4 and issubclass(upvid.PipeClosedError, upvid.OutputError)


# -- interlaced sources ------------------------------------------------------------------------
W, H, N = 96, 64, 12


def _field_time_picture(t: int) -> np.ndarray:
    """A bar moving 3 px per field period over a still background."""
    img = np.full((H, W, 3), 40, np.uint8)
    x = (3 * t) % (W - 12)
    img[:, x:x + 12] = (220, 200, 180)
    img[10:20, :] = (0, 120, 250)
    return img


def make_interlaced(path: Path) -> Path:
    """25 fps H.264, coded interlaced top field first: each frame weaves the field times 2k and 2k+1."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.codec_context.options = {"x264-params": "interlaced=1:tff=1:log-level=error", "crf": "10"}
        for k in range(N):
            woven = _field_time_picture(2 * k)
            woven[1::2] = _field_time_picture(2 * k + 1)[1::2]
            f = av.VideoFrame.from_ndarray(woven, format="rgb24").reformat(format="yuv420p")
            f.pts = k
            out.mux(s.encode(f))
        out.mux(s.encode())
    return path


def _lr_combing(out: Path, scale: int) -> float:
    from upvid.io.deinterlace import combing

    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24").astype(np.float64) for f in c.decode(video=0)]
    vals = []
    for f in frames:  # back to the LR grid (2x2 means), where the fields are rows
        h, w = f.shape[0] // scale, f.shape[1] // scale
        vals.append(combing(f.reshape(h, scale, w, scale, 3).mean(axis=(1, 3))))
    return float(np.mean(vals))


def test_interlaced_clip_comes_out_progressive(tmp_path):
    from upvid.io.deinterlace import combing
    from upvid.io.probe import probe

    src = make_interlaced(tmp_path / "int.mp4")
    assert probe(src).field_order == 2  # flagged top field first
    with av.open(str(src)) as c:
        before = float(np.mean([combing(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]))
    results = {}
    for mode in ("auto", "off", "bwdif-field"):
        out = tmp_path / f"o-{mode}.mkv"
        code, _, err = call(src, out, "-m", "bicubic", "-s", "2", "--deinterlace", mode, "-q")
        assert code == 0, err
        results[mode] = (describe(out), _lr_combing(out, 2), probe(out).field_order)
    assert before > 2.0  # woven fields of a moving bar
    d, comb, order = results["auto"]
    assert comb < 0.8 and order in (0, 1) and d["frames"] == N  # auto: flagged, so bwdif; no stale flag
    assert np.allclose(d["pts_s"], [k / 25 for k in range(N)], atol=0.002)
    assert results["off"][1] > 1.5  # the combing the model would otherwise upscale (1.84)
    d, comb, _ = results["bwdif-field"]
    assert d["frames"] == 2 * N and comb < 0.8  # a frame per field, at 50 fps
    assert np.allclose(d["pts_s"], [k / 50 for k in range(2 * N)], atol=0.002)


def test_shared_interlaced_mpeg2_is_deinterlaced_by_auto():
    from upvid.io.deinterlace import resolve_mode
    from upvid.io.probe import probe

    path = need(VIDEOS / "k3b" / "k3bphotosvcd.mpg")
    info = probe(path)
    assert info.codec == "mpeg2video" and info.field_order == 2
    assert resolve_mode("auto", info, path) == ("bwdif", False)  # the flagged frames only
    assert resolve_mode("off", info, path) == ("off", True)
