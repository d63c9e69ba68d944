"""What Video2X and Real-ESRGAN users reach for (issue 26): output size (--outscale, --size,
--height), audio choices (--no-audio, --audio-codec, --audio-bitrate, decided before any frame),
one warning for a damaged audio track, encoder option checks, --weights-dir checks and caching,
and `upvid models`' family names."""

from __future__ import annotations

import json
import os

import av
import pytest

from tests import cli
from tests.data import WEIGHTS, need
from tests.cli import call
from tests.media import describe, engine_rgb, make_clip

FAST = ["--preset", "ultrafast", "-q"]


def test_rlfn_outscale_and_height_give_the_requested_size(realshort, tmp_path):
    """rlfn-x4 runs at x4 (1280x960), then the output is resized: --outscale 2 -> 640x480,
    --height 1080 -> 1440x1080; every frame (of a 6-frame preview, to keep it cheap) and the
    audio kept."""
    w = str(need(WEIGHTS))
    for opt, size in ((["--outscale", "2"], (640, 480)), (["--height", "1080"], (1440, 1080))):
        out = tmp_path / f"o{size[1]}.mp4"
        code, _, stderr = call(realshort, out, "-m", "rlfn-x4", "--weights-dir", w, "--frames", "0:6", *opt, *FAST)
        assert code == 0, stderr
        d = describe(out)
        assert d["size"] == size and d["frames"] == 6 and len(d["audio"]) == 1


def test_size_and_a_resize_that_matches_a_plain_bicubic(tmp_path):
    import numpy as np
    import torch

    src = make_clip(tmp_path / "in.mkv", n=3, size=(32, 24), audio=())
    out = tmp_path / "frames"
    code, _, stderr = call(src, out, "-m", "bicubic", "-s", "2", "--size", "50x30", "-q")
    assert code == 0, stderr
    from upvid.io.images import read_image_folder

    frames = list(read_image_folder(out))
    assert [f.shape for f in frames] == [(30, 50, 3)] * 3
    # the resize is the model output (x2) resized bicubic + antialias: check one frame against torch
    with av.open(str(src)) as c:
        x = engine_rgb(next(c.decode(video=0)))
    x2 = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    want = torch.nn.functional.interpolate(x2, size=(30, 50), mode="bicubic", align_corners=False, antialias=True)
    want = (want.clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0).numpy()
    assert np.abs(frames[0].astype(int) - want.astype(int)).max() <= 1


@pytest.mark.parametrize("args,message", [
    (["--outscale", "2", "--height", "100"], "one of --outscale, --size and --height"),
    (["--size", "12by4"], "WIDTHxHEIGHT"),
    (["--outscale", "0"], "--outscale"),
    (["--audio-codec", "mp3"], "--audio-codec must be one of"),
    (["--no-audio", "--audio-codec", "aac"], "--no-audio or --audio-codec"),
    (["--audio-bitrate", "lots"], "--audio-bitrate"),
    (["--preset", "nonsense"], "ultrafast"),
    (["--crf", "99"], "0..51"),
    (["--codec", "libsvtav1", "--crf", "70"], "0..63"),
    (["--weights-dir", "/no/such/folder"], "no such folder"),
])
def test_bad_options_are_exit_2_with_one_line(realshort, tmp_path, args, message):
    code, _, stderr = call(realshort, tmp_path / "o.mp4", "-m", "bicubic", "-s", "2", "-q", *args)
    assert code == 2, stderr
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def with_subs(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("opts") / "subs.mkv", n=10, subtitles=["a", "b"])


def test_no_audio_keeps_subtitles(with_subs, tmp_path):
    out = tmp_path / "o.mkv"
    assert call(with_subs, out, "-m", "bicubic", "-s", "2", "--no-audio", *FAST)[0] == 0
    d = describe(out)
    assert d["audio"] == [] and len(d["subtitle_codecs"]) == 1 and d["frames"] == 10


@pytest.mark.parametrize("choice,codec", [("flac", "flac"), ("opus", "opus"), ("aac", "aac")])
def test_audio_codec_choice(with_subs, tmp_path, choice, codec):
    out = tmp_path / "o.mkv"
    code, _, stderr = call(with_subs, out, "-m", "bicubic", "-s", "2", "--audio-codec", choice,
                           "--audio-bitrate", "96k", *FAST)
    assert code == 0, stderr
    with av.open(str(out)) as c:
        a = c.streams.audio[0]
        assert a.codec_context.name == codec
        assert a.metadata.get("language") == "eng"


def test_audio_the_container_refuses_is_a_choice_before_any_frame(with_subs, tmp_path, monkeypatch):
    """FLAC into .mov (FFmpeg: only in MP4): exit 2 before the model runs, offering the options."""
    import upvid.job.run as job

    ran = []
    monkeypatch.setattr(job, "run_pipeline", lambda *a, **k: ran.append(1))
    code, _, stderr = call(with_subs, tmp_path / "o.mov", "-m", "bicubic", "-s", "2", "--audio-codec", "flac", *FAST)
    assert code == 2 and not ran
    assert "--no-audio" in stderr and "--audio-codec" in stderr and len(stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_damaged_audio_warns_once(tmp_path):
    """Every AAC packet's payload damaged: one warning for the track, then one count, not one per packet."""
    src = make_clip(tmp_path / "in.mp4", n=25)  # MP4: a packet's pos is exactly its payload's offset
    data = bytearray(src.read_bytes())
    with av.open(str(src)) as c:
        spots = [(p.pos, p.size) for p in c.demux(c.streams.audio[0]) if p.size > 8 and p.pos]
    for pos, size in spots:
        for k in range(pos + 2, pos + size - 1):
            data[k] ^= 0x5A
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    out = tmp_path / "o.mkv"  # --audio-codec opus: transcoded, so every packet is decoded
    code, _, stderr = call(bad, out, "-m", "bicubic", "-s", "2", "--audio-codec", "opus", *FAST)
    assert code == 0, stderr
    warned = [ln for ln in stderr.splitlines() if "undecodable audio" in ln]
    assert len(spots) > 10 and 1 <= len(warned) <= 2, stderr
    assert len(stderr.strip().splitlines()) <= 3


def test_models_fetch_from_a_weights_dir_leaves_the_model_cached(tmp_path):
    """After `upvid models fetch rlfn-x4 --weights-dir DIR`, a run without --weights-dir and with
    HF_HUB_OFFLINE=1 finds the checkpoint in the cache; `upvid models` names the families."""
    w = need(WEIGHTS)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("UPVID_WEIGHTS_DIR", None)

    def run(*args):
        return cli.run(*args, env=env, replace_env=True, timeout=300)

    rows = {row["name"]: row for row in json.loads(run("models", "--json").stdout)}
    assert rows["rlfn-x4"]["weights"] == "embedded (fp16)" and rows["rlfn-x4"]["embedded"]
    r = run("models", "fetch", "rlfn-x4", "--weights-dir", str(w))
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(run("models", "--json").stdout)}
    assert rows["rlfn-x4"]["weights"] == "cached" and rows["rlfn-x4"]["kind"] == "per-frame"
    assert rows["edvr-m"]["kind"] == "sliding window (5)" and rows["basicvsr"]["kind"] == "recurrent (clip 30)"
    src = make_clip(tmp_path / "in.mp4", n=2)
    r = run(str(src), str(tmp_path / "o.mp4"), "-m", "rlfn-x4", "-q")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("flag", ["--clip", "--chunk"])
def test_clip_is_the_clip_length_and_chunk_its_old_name(tmp_path, flag):
    """``--clip N`` (and its older name ``--chunk``) sets the recurrent clip length: an overlap that
    does not fit in the clip is refused, one that fits runs."""
    src = make_clip(tmp_path / "in.mp4", n=3, size=(48, 32))
    out = tmp_path / f"o{flag}.mkv"
    code, _, err = call(src, out, "-m", "basicvsr", "--random-weights", flag, "2", "--overlap", "2",
                        "--frames", "0:3", "-q")
    assert code == 2 and "--overlap must be in [0, chunk) = [0, 2)" in err, err
    code, _, err = call(src, out, "-m", "basicvsr", "--random-weights", flag, "2", "--overlap", "1",
                        "--frames", "0:3", "-q", "--tile", "0")
    assert code == 0, err
