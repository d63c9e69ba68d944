"""The segment join for every output container upvid writes, with 1, 2 and many segments, with
audio and subtitles: every frame kept, frame times and A/V sync within one frame of the input;
a join failure keeps the finished segments (issue 23)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import pytest

from tests.cli import call
from tests.media import describe, grey_clip, make_clip

CONTAINERS = ["mkv", "mp4", "mov", "webm", "avi", "nut", "ts", "mpg", "ogv"]
#: --segment-frames giving one, two and eight segments of the 36-frame clip.
SEGMENTS = {"one": 1000, "two": 18, "many": 5}


def timeline(path: Path) -> tuple[list[float | None], float | None, int, Fraction]:
    """Decoded video frame times (s), first audio time (s), audio stream count, average rate."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        rate = v.average_rate or v.guessed_rate
        times = [float(f.pts * f.time_base) if f.pts is not None else None for f in c.decode(v)]
    with av.open(str(path)) as c:
        n_audio = len(c.streams.audio)
        a0 = None
        if n_audio:
            for f in c.decode(c.streams.audio[0]):
                if f.pts is not None:
                    a0 = float(f.pts * f.time_base)
                    break
    return times, a0, n_audio, Fraction(rate)


def fill_missing(times: list[float | None], period: float) -> list[float]:
    """MPEG-PS stores a time only where a PES packet starts: the frames between follow at the frame period."""
    out: list[float] = []
    for t in times:
        out.append(t if t is not None else out[-1] + period)
    return out


@pytest.fixture(scope="module")
def source(realshort) -> tuple[Path, list[float], float]:
    times, a0, n_audio, _ = timeline(realshort)
    assert n_audio == 1 and a0 is not None and len(times) == 36
    return realshort, times, a0


@pytest.mark.parametrize("segments", list(SEGMENTS))
@pytest.mark.parametrize("suffix", CONTAINERS)
def test_join_keeps_every_frame_and_av_sync(source, tmp_path, suffix, segments):
    src, src_times, src_a0 = source
    out = tmp_path / f"out.{suffix}"
    code, _, stderr = call(src, out, "-m", "bicubic", "-s", "2", "--preset", "ultrafast", "-q",
                           "--segment-frames", SEGMENTS[segments])
    assert code == 0, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no work folder, no temporary file
    times, a0, n_audio, _ = timeline(out)
    period = 1001 / 30000
    assert len(times) == len(src_times) == 36
    times = fill_missing(times, period)
    assert n_audio == 1 and a0 is not None
    # Frame times relative to the first frame: within 1 ms of the input (Matroska keeps ms) -
    # except Ogg, whose demuxer reads the second frame's granule as the first's (FFmpeg).
    rel = [t - times[0] for t in times]
    src_rel = [t - src_times[0] for t in src_times]
    tol = period if suffix == "ogv" else 0.0011
    assert max(abs(a - b) for a, b in zip(rel, src_rel)) <= tol
    # A/V sync: the video starts as far from the audio as in the input, within one frame period
    # (Opus' pre-skip shifts webm audio by 6.5 ms; FFmpeg's AVI reader shows H.264 one frame late).
    offset = (times[0] - a0) - (src_times[0] - src_a0)
    assert abs(offset) <= period + 1e-6, offset


@pytest.fixture(scope="module")
def subtitled(tmp_path_factory) -> Path:
    """A 30-frame mkv with AAC audio and six SubRip cues, one every 100 ms."""
    return make_clip(tmp_path_factory.mktemp("subs") / "subs.mkv", n=30, subtitles=[f"cue {i}" for i in range(6)])


@pytest.mark.parametrize("suffix", ["mkv", "mp4", "mov", "webm"])
def test_join_of_many_segments_keeps_subtitles(subtitled, tmp_path, suffix):
    out = tmp_path / f"out.{suffix}"
    code, _, stderr = call(subtitled, out, "-m", "bicubic", "-s", "2", "--preset", "ultrafast", "-q",
                           "--segment-frames", "4")
    assert code == 0, stderr
    d = describe(out)
    assert d["frames"] == 30 and len(d["audio"]) == 1
    cues = [(round(t, 1), data) for t, data in d["subtitles"] if b"cue" in data]  # mov_text adds empty gap samples
    assert [t for t, _ in cues] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert all(f"cue {i}".encode() in data for i, (_, data) in enumerate(cues))
    assert d["pts_s"] == describe(subtitled)["pts_s"]


def test_mp3_audio_is_copied_into_mp4(tmp_path):
    """The decoder is called mp3float; the codec is mp3, which MP4 holds: copied, not re-encoded."""
    src = make_clip(tmp_path / "in.mkv", n=10, audio=("libmp3lame",))
    with av.open(str(src)) as c:
        assert c.streams.audio[0].codec_context.name == "mp3float"
        src_packets = [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]
    out = tmp_path / "out.mp4"
    assert call(src, out, "-m", "bicubic", "-s", "2", "-q", "--preset", "ultrafast")[0] == 0
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.codec.canonical_name == "mp3"
        assert [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size] == src_packets


def test_surround_audio_keeps_its_layout_in_webm(tmp_path):
    """5.1 AAC into WebM is transcoded to Opus with all six channels (Opus surround mapping)."""
    src = grey_clip(tmp_path / "in.mkv", frames=10, size=(32, 24), level_step=20, audio_codec="aac", layout="5.1",
                    audio_seconds=0.4)
    out = tmp_path / "out.webm"
    code, _, stderr = call(src, out, "-m", "bicubic", "-s", "2", "-q")
    assert code == 0, stderr
    with av.open(str(out)) as c:
        a = c.streams.audio[0].codec_context
        assert (a.name, a.channels) == ("opus", 6)


def test_hevc_10bit_source_stays_hevc(tmp_path):
    src = make_clip(tmp_path / "in.mkv", n=6, codec="libx265", pix_fmt="yuv420p10le", audio=())
    out = tmp_path / "out.mkv"
    code, _, stderr = call(src, out, "-m", "bicubic", "-s", "2", "-q", "--preset", "ultrafast")
    assert code == 0, stderr
    d = describe(out)
    assert (d["codec"], d["pix_fmt"]) == ("hevc", "yuv420p10le")


@pytest.mark.parametrize("name", ["out.ogg", "out.mp3", "out.png"])
def test_not_a_video_suffix(realshort, tmp_path, name):
    """An audio or image suffix (.ogg is Ogg audio; Ogg video is .ogv) is refused before any work,
    instead of silently becoming a folder of PNG frames."""
    out = tmp_path / name
    code, _, stderr = call(realshort, out, "-m", "bicubic", "-s", "2", "-q", "--preset", "ultrafast")
    assert code == 2 and "not a video container" in stderr and len(stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_folder_output_says_audio_is_not_kept(realshort, tmp_path):
    code, _, stderr = call(realshort, tmp_path / "frames", "-m", "bicubic", "-s", "1")
    assert code == 0
    assert "audio/subtitle stream(s) are not kept" in stderr
    assert len(list((tmp_path / "frames").iterdir())) == 36


def test_join_failure_keeps_segments_and_says_how_to_finish(realshort, tmp_path, monkeypatch):
    """A muxer refusing the join (after every frame is encoded) deletes nothing: the segments, the
    journal and an FFmpeg concat list stay; --resume redoes only the join."""
    import upvid.io.mux as mux
    import upvid.job.run as job

    real = mux.assemble

    def refuse(*a, **k):
        raise mux.EncodeError("muxing .out.partial.mkv: Invalid argument")

    out = tmp_path / "out.mkv"
    args = ["-m", "bicubic", "-s", "2", "--preset", "ultrafast", "-q", "--segment-frames", "10"]
    with monkeypatch.context() as m:
        m.setattr(job, "assemble", refuse)
        code, _, stderr = call(realshort, out, *args)
    assert code == 8
    assert len(stderr.strip().splitlines()) == 1 and "--resume" in stderr and "ffmpeg -f concat" in stderr
    work = tmp_path / ".out.mkv.upvid-partial"
    journal = json.loads((work / "journal.json").read_text())
    assert journal["complete"] and journal["frames_done"] == 36 and len(journal["segments"]) == 4
    assert not out.exists()
    # The concat list joins the kept segments as they are.
    with av.open(str(work / "segments.ffconcat"), format="concat", options={"safe": "0"}) as c:
        assert sum(1 for _ in c.decode(video=0)) == 36
    ran = []
    with monkeypatch.context() as m:
        m.setattr(job, "run_pipeline", lambda *a, **k: ran.append(1))
        m.setattr(job, "assemble", real)
        code, _, stderr = call(realshort, out, *args, "--resume")
    assert code == 0, stderr
    assert not ran and describe(out)["frames"] == 36 and not work.exists()
