"""The GPU colour path (4:2:0 planes <-> RGB in the engine), run here on the CPU.

On CUDA upvid decodes to the stream's own 4:2:0 planes, converts them to RGB on the device,
and converts the HR output back to 4:2:0 there for the encoder. These tests check the
conversions against libswscale (through PyAV) on real video, and the whole job with the path
forced on (``colour_on_device=True``) against the default RGB path.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from tests.data import VIDEOS, need
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
    got = (got.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
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
def test_job_with_colour_on_device_matches_the_rgb_path(tmp_path, colour):
    """The whole job (decode planes -> engine -> planes -> encoder) against libswscale's RGB path."""
    from upvid.job import EngineFactory, JobOptions, run_job

    tags, pix_fmt = {"bt709": (dict(colorspace=1, color_range=1), "yuv420p"),
                     "bt601-full": (dict(colorspace=5, color_range=2), "yuvj420p")}[colour]
    src = _tagged_real_clip(tmp_path / "in.mp4", tags, pix_fmt)
    outs = {}
    for on in (False, True):
        opts = JobOptions(model="bicubic", scale=2, device="cpu", colour_on_device=on)
        out = tmp_path / f"out-{on}.mp4"
        run_job(src, out, opts, EngineFactory(opts))
        outs[on] = out
    a, b = describe(outs[False]), describe(outs[True])
    assert a["size"] == b["size"] == (640, 480) and a["frames"] == b["frames"] == 6
    assert a["pts_s"] == b["pts_s"] and a["colour"] == b["colour"] == describe(src)["colour"]
    for fa, fb in zip(a["first_rgb"], b["first_rgb"]):
        assert _psnr(fa, fb) > 38, colour  # measured 41: only chroma filtering and rounding differ (a wrong matrix or range: < 30)
