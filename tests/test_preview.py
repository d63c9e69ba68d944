"""Preview a stretch of a long video: --start/--duration and --frames A:B, with audio, subtitles,
chapters and timestamps cut to match."""

from __future__ import annotations

import av
import numpy as np
import pytest

from tests.cli import call
from tests.media import describe, make_clip
from upvid.errors import UsageError
from upvid.io.images import read_image_folder
from upvid.io.span import Span, parse_span


def test_span_parsing():
    assert parse_span(None, None, None) is None
    assert parse_span("1:02.5", "2", None) == Span(start_s=62.5, end_s=64.5)
    assert parse_span("00:00:01.250", None, None) == Span(start_s=1.25)
    assert parse_span(None, None, "10:20") == Span(first=10, end=20)
    assert parse_span(None, None, "5:") == Span(first=5)
    for bad in [("x", None, None), (None, "0", None), (None, None, "20:10"), ("1", None, "1:2"), (None, None, ":")]:
        with pytest.raises(UsageError):
            parse_span(*bad)


def test_frames_preview_equals_those_frames_of_the_whole_run(realshort, tmp_path):
    """A per-frame model into PNG folders (lossless): --frames 10:20 gives exactly frames 10..19
    of the whole run; --start/--duration selects by time (45000/1499 fps: frame 12 is at 0.3997 s,
    so 0.4 s starts at frame 13; 0.9 s ends after frame 27, at 0.8994 s)."""
    common = ["-m", "bicubic", "--scale", "2", "-q"]
    assert call(str(realshort), str(tmp_path / "all"), *common)[0] == 0
    assert call(str(realshort), str(tmp_path / "part"), *common, "--frames", "10:20")[0] == 0
    assert call(str(realshort), str(tmp_path / "timed"), *common, "--start", "0.4", "--duration", "0.5")[0] == 0
    whole = list(read_image_folder(tmp_path / "all"))
    part = list(read_image_folder(tmp_path / "part"))
    timed = list(read_image_folder(tmp_path / "timed"))
    assert len(whole) == 36 and len(part) == 10 and len(timed) == 15
    assert all(np.array_equal(a, b) for a, b in zip(part, whole[10:20]))
    assert all(np.array_equal(a, b) for a, b in zip(timed, whole[13:28]))


def test_preview_video_audio_subtitles_and_chapters_start_at_zero(tmp_path):
    """A 2 s clip with AAC audio, text subtitles (one cue per 100 ms) and chapters, previewed from
    0.8 s for 0.6 s: 15 frames from t=0, audio covering 0.6 s from about 0, the cues of that
    stretch moved to start at 0, chapters cut to it."""
    src = make_clip(tmp_path / "in.mkv", n=50, fps=25, subtitles=[f"cue {i}" for i in range(20)], sub_codec="subrip",
                    chapters=True)
    code, _, err = call(str(src), str(tmp_path / "p.mkv"), "-m", "bicubic", "--scale", "2", "-q",
                        "--start", "0.8", "--duration", "0.6")
    assert code == 0, err
    d = describe(tmp_path / "p.mkv")
    assert d["frames"] == 15
    assert d["pts_s"][0] == 0.0 and abs(d["pts_s"][-1] - 0.56) < 0.002
    assert [t for t, _ in d["subtitles"]] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert d["subtitles"][0][1].endswith(b"cue 8")
    with av.open(str(tmp_path / "p.mkv")) as c:
        a = [float(p.pts * p.time_base) for p in c.demux(c.streams.audio[0]) if p.pts is not None]
    assert 0 <= a[0] < 0.05 and 0.5 < a[-1] < 0.6
    assert all(0 <= t < 0.6 for t, _ in d["chapters"])


def test_preview_beyond_the_end_is_a_usage_error(realshort, tmp_path):
    code, _, err = call(str(realshort), str(tmp_path / "o.mp4"), "-m", "bicubic", "--start", "5")
    assert code == 2 and "no frame in" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()
