"""The colour path (4:2:0 planes <-> RGB in the engine).

upvid decodes to the stream's own 4:2:0 planes, converts them to RGB in the engine (on the GPU
when there is one), and converts the HR output back to 4:2:0 there for the encoder, keeping
out-of-gamut values. These tests check the conversions against libswscale (through PyAV) on
real video, the whole job against libswscale's RGB path (``colour_in_engine=False``), and that
no path shifts a real clip's mean level (issue 14: superwhite clipped to RGB darkened realshort
by 2.8 levels of luma).
"""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from tests.data import VIDEOS, WEIGHTS, need
from tests.media import describe
from upvid.engine.colour import rgb_to_yuv420, yuv420_to_rgb


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _first_frames(path, n=3):
    with av.open(str(path)) as c:
        out = []
        for f in c.decode(video=0):
            out.append(f)
            if len(out) == n:
                return out
    return out


@pytest.mark.parametrize("colorspace,full", [(1, False), (5, False), (2, False), (1, True), (9, False)])
def test_planes_to_rgb_matches_libswscale(colorspace, full):
    """A real decoded frame's planes, re-tagged with each matrix/range, converted both ways."""
    frame = _first_frames(need(VIDEOS / "imageio" / "realshort.mp4"), 1)[0]
    planes = frame.to_ndarray()  # yuv420p, (H * 3 / 2, W)
    names = {1: "itu709", 5: "itu601", 2: "itu601", 9: "bt2020"}
    ref_frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    ref = ref_frame.reformat(format="rgb24", src_colorspace=names[colorspace],
                             src_color_range="JPEG" if full else "MPEG").to_ndarray()
    got = yuv420_to_rgb(torch.from_numpy(planes)[None], colorspace, full)[0]
    got = (got.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # libswscale clips RGB
    assert got.shape == ref.shape
    # libswscale's fast path repeats chroma (nearest); ours interpolates it at the MPEG-2 siting
    assert np.abs(got.astype(int) - ref).mean() < 1.6
    assert _psnr(got, ref) > 38


@pytest.mark.parametrize("colorspace,full", [(1, False), (5, False), (1, True)])
def test_rgb_to_planes_matches_libswscale(colorspace, full):
    frame = _first_frames(need(VIDEOS / "imageio" / "realshort.mp4"), 1)[0]
    rgb = frame.to_ndarray(format="rgb24")
    names = {1: "itu709", 5: "itu601"}
    ref = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", dst_colorspace=names[colorspace], dst_color_range="JPEG" if full else "MPEG").to_ndarray()
    got = rgb_to_yuv420(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255, colorspace, full)[0].numpy()
    h = rgb.shape[0]
    assert got.shape == ref.shape and got.dtype == np.uint8
    assert np.abs(got[:h].astype(int) - ref[:h]).max() <= 1  # luma: the same matrix to the rounding
    # chroma: a different low-pass filter (and libswscale rounds full-range grey to 127, the spec says 128)
    assert np.abs(got[h:].astype(int) - ref[h:]).mean() < 1.0


def test_round_trip_and_flat_colours_are_exact():
    """Flat colour patches survive planes -> RGB -> planes unchanged (matrix and range inverse)."""
    h, w = 32, 48
    rgb = torch.zeros(1, 3, h, w)
    colours = [(0.9, 0.1, 0.2), (0.1, 0.8, 0.3), (0.2, 0.3, 0.9), (0.5, 0.5, 0.5)]
    for k, c in enumerate(colours):
        rgb[0, :, :, k * 12:(k + 1) * 12] = torch.tensor(c)[:, None, None]
    for cs, full in [(1, False), (5, True), (9, False)]:
        planes = rgb_to_yuv420(rgb, cs, full)
        back = yuv420_to_rgb(planes, cs, full)
        inner = [slice(k * 12 + 2, (k + 1) * 12 - 2) for k in range(4)]
        for sl in inner:
            assert (back[..., sl] - rgb[..., sl]).abs().max() < 3 / 255
        again = rgb_to_yuv420(back, cs, full)
        for sl in inner:  # luma inside the patches
            assert (again[:, :h, sl].int() - planes[:, :h, sl].int()).abs().max() <= 1


def test_odd_size_is_refused():
    with pytest.raises(ValueError, match="even"):
        rgb_to_yuv420(torch.zeros(1, 3, 5, 6), 1, False)


def _tagged_real_clip(path, tags: dict, pix_fmt: str, n: int = 6):
    """The first ``n`` frames of a real phone-camera clip re-encoded with the given colour tags."""
    frames = [f.to_ndarray(format="rgb24") for f in _first_frames(need(VIDEOS / "imageio" / "realshort.mp4"), n)]
    names = {1: "itu709", 5: "itu601"}
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        v.options = {"preset": "ultrafast", "crf": "12"}
        for k, val in tags.items():
            setattr(v.codec_context, k, val)
        rng = "JPEG" if tags["color_range"] == 2 else "MPEG"
        for i, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format=pix_fmt, dst_colorspace=names[tags["colorspace"]], dst_color_range=rng)
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode(None))
    return path


@pytest.mark.parametrize("colour", ["bt709", "bt601-full"])
def test_job_with_colour_in_engine_matches_the_rgb_path(tmp_path, colour):
    """The whole job (decode planes -> engine -> planes -> encoder) against libswscale's RGB path."""
    from upvid.job import EngineFactory, JobOptions, run_job

    tags, pix_fmt = {"bt709": (dict(colorspace=1, color_range=1), "yuv420p"),
                     "bt601-full": (dict(colorspace=5, color_range=2), "yuvj420p")}[colour]
    src = _tagged_real_clip(tmp_path / "in.mp4", tags, pix_fmt)
    outs = {}
    for on in (False, True):
        opts = JobOptions(model="bicubic", scale=2, device="cpu", colour_in_engine=on)
        out = tmp_path / f"out-{on}.mp4"
        run_job(src, out, opts, EngineFactory(opts))
        outs[on] = out
    a, b = describe(outs[False]), describe(outs[True])
    assert a["size"] == b["size"] == (640, 480) and a["frames"] == b["frames"] == 6
    assert a["pts_s"] == b["pts_s"] and a["colour"] == b["colour"] == describe(src)["colour"]
    for fa, fb in zip(a["first_rgb"], b["first_rgb"]):
        assert _psnr(fa, fb) > 38, colour  # measured 41: only chroma filtering and rounding differ (a wrong matrix or range: < 30)


def _mean_planes(path, frames: int | None = None) -> tuple[np.ndarray, int]:
    """Mean Y, U, V code of the first ``frames`` (default: every) frame of ``path``'s video, and its bit depth."""
    sums, n, bits = np.zeros(3), 0, 8
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            if frames is not None and n == frames:
                break
            bits = 10 if "10" in f.format.name else 8
            a = f.to_ndarray().astype(np.float64)
            h = f.height
            sums += [a[:h].mean(), a[h : h + h // 4].mean(), a[h + h // 4 :].mean()]
            n += 1
    return sums / n, bits


def _mean_rgb_exact(path) -> np.ndarray:
    """Mean R, G, B of ``path`` by the BT.601 limited-range formula in float64, clipped to 0..255.

    Not libswscale's RGB: its fast yuv2rgb path truncates (126 for the exact 128.08, 206 for
    207.33), 1.0-1.5 levels low on realshort's unsaturated pixels.
    """
    means = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            a, h, w = f.to_ndarray().astype(np.float64), f.height, f.width
            y = (a[:h] - 16) / 219
            u, v = ((a[h:].reshape(2, h // 2, w // 2) - 128) / 224).repeat(2, 1).repeat(2, 2)
            r, b = y + 1.402 * v, y + 1.772 * u
            g = (y - 0.299 * r - 0.114 * b) / 0.587
            means.append([np.clip(ch * 255, 0, 255).mean() for ch in (r, g, b)])
    return np.mean(means, 0)


def _ten_bit_copy(path, dst):
    """realshort re-encoded to 10-bit HEVC from its own planes (codes x 4: superwhite kept)."""
    with av.open(str(path)) as src, av.open(str(dst), "w") as c:
        v = c.add_stream("libx265", rate=30)
        v.width, v.height, v.pix_fmt = 320, 240, "yuv420p10le"
        v.options = {"preset": "ultrafast", "crf": "4", "x265-params": "log-level=error"}
        for i, f in enumerate(src.decode(video=0)):
            g = av.VideoFrame.from_ndarray(f.to_ndarray().astype(np.uint16) << 2, format="yuv420p10le")
            g.pts = i
            c.mux(v.encode(g))
        c.mux(v.encode(None))
    return dst


@pytest.mark.parametrize("case", ["h264", "h264-to-10bit", "hevc-10bit", "png", "rlfn-x4"])
def test_no_path_shifts_the_mean_level_of_a_real_clip(tmp_path, case):
    """Mean Y/U/V (and mean RGB for PNG out) of the output within 0.25 level of the input's.

    realshort (H.264 4:2:0, untagged, 10 % of its pixels superwhite) lost 2.8 levels of mean luma
    through libswscale's clipped RGB: the ``colour_in_engine=False`` run shows the test can fail.
    """
    from upvid.io.span import Span
    from upvid.job import EngineFactory, JobOptions, run_job

    src = need(VIDEOS / "imageio" / "realshort.mp4")
    kw = dict(model="bicubic", scale=2, device="cpu", audio_codec="none", crf=4)
    out = tmp_path / "out.mkv"
    if case == "h264-to-10bit":
        kw["bit_depth"] = 10
    elif case == "hevc-10bit":
        src = _ten_bit_copy(src, tmp_path / "in10.mkv")
    elif case == "png":
        out, kw = tmp_path / "frames", dict(kw, crf=None)
    elif case == "rlfn-x4":  # a real model on the first 8 frames (a preview: --frames 0:8)
        kw = dict(kw, model="rlfn-x4", scale=4, weights_dir=need(WEIGHTS), tile=0, span=Span(0, 8))
    opts = JobOptions(**kw)
    run_job(src, out, opts, EngineFactory(opts))
    if case == "png":
        got = np.mean([av.open(str(p)).decode(video=0).__next__().to_ndarray(format="rgb24").reshape(-1, 3).mean(0)
                       for p in sorted(out.glob("*.png"))], 0)
        want = _mean_rgb_exact(src)
        assert np.abs(got - want).max() < 0.25, (got, want)
        return
    n = 8 if case == "rlfn-x4" else None
    (want, wbits), (got, gbits) = _mean_planes(src, n), _mean_planes(out)
    scale = 2 ** (gbits - wbits)
    assert gbits == (10 if case != "h264" and case != "rlfn-x4" else 8)
    assert np.abs(got / scale - want).max() < 0.25 * (4 if wbits == 10 else 1), (got / scale, want)
    if case == "h264":  # libswscale's RGB path clips the superwhite: the same check fails
        opts = JobOptions(**kw, colour_in_engine=False)
        run_job(src, tmp_path / "clipped.mkv", opts, EngineFactory(opts))
        clipped, _ = _mean_planes(tmp_path / "clipped.mkv")
        assert want[0] - clipped[0] > 2, (clipped, want)
