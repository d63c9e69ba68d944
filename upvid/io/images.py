"""Image sequences (a folder of PNG/JPEG frames) and synthetic test clips, through PyAV."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np

from upvid.errors import InputError, OutputError
from upvid.io.probe import media_url

if TYPE_CHECKING:
    from upvid.io.probe import VideoInfo
    from upvid.io.reader import DecodedFrame

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Sorted image files of ``folder``.

    Raises:
        InputError: not a folder, or no image in it.
    """
    p = Path(folder)
    if not p.is_dir():
        raise InputError(f"{p}: not a folder of images")
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{p}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode one image to ``(H, W, 3)`` RGB: ``uint8``, or ``uint16`` for 16-bit PNGs.

    Raises:
        InputError: unreadable.
    """
    try:
        with av.open(media_url(path)) as c:
            frame = next(c.decode(video=0))
            deep = any(comp.bits > 8 for comp in frame.format.components)
            return frame.to_ndarray(format="rgb48le" if deep else "rgb24")
    except (av.error.FFmpegError, StopIteration, IndexError, ValueError, OSError) as e:
        raise InputError(f"{path}: cannot decode image ({getattr(e, 'strerror', None) or e or 'no picture'})") from e


def read_image_folder(folder: str | os.PathLike) -> Iterator[np.ndarray]:
    """Yield the frames of an image folder in name order (see :func:`read_image`)."""
    for f in list_images(folder):
        yield read_image(f)


def probe_images(folder: str | os.PathLike, fps: Fraction | int = 25) -> "VideoInfo":
    """Describe an image folder as a video: size and depth from the first image, ``fps`` given.

    Timestamps are frame numbers (time base ``1/fps``); there are no other streams.

    Raises:
        InputError: not a folder, no image in it, or the first image unreadable.
    """
    from upvid.io.probe import VideoInfo

    files = list_images(folder)
    first = read_image(files[0])
    fps = Fraction(fps)
    h, w = first.shape[:2]
    return VideoInfo(
        path=Path(folder), container="image2", codec="png", width=w, height=h, fps=fps, time_base=1 / fps,
        frames=len(files), duration=float(len(files) / fps), start_time=0.0,
        pix_fmt="rgb48le" if first.dtype == np.uint16 else "rgb24", bit_depth=16 if first.dtype == np.uint16 else 8,
    )


def read_image_frames(info: "VideoInfo", *, high_bit_depth: bool | None = None, span=None) -> Iterator["DecodedFrame"]:
    """Decode an image folder described by :func:`probe_images` as :class:`DecodedFrame` s (pts = index).

    ``span`` (:class:`upvid.io.span.Span`): only the images of that stretch (times at the folder's fps).

    Raises:
        InputError: an image is unreadable or of another size than the first.
    """
    from upvid.io.reader import DecodedFrame

    deep = info.bit_depth > 8 if high_bit_depth is None else high_bit_depth
    for i, f in enumerate(list_images(info.path)):
        if span is not None:
            t = i / float(info.fps)
            if span.past(i, t):
                return
            if not span.contains(i, t):
                continue
        rgb = read_image(f)
        if rgb.shape[:2] != (info.height, info.width):
            raise InputError(f"{f}: {rgb.shape[1]}x{rgb.shape[0]}, but the first image is {info.width}x{info.height}")
        if deep and rgb.dtype == np.uint8:
            rgb = rgb.astype(np.uint16) * 257
        elif not deep and rgb.dtype == np.uint16:
            rgb = (rgb.astype(np.uint32) + 128) // 257
            rgb = rgb.astype(np.uint8)
        yield DecodedFrame(rgb=rgb, pts=i, index=i)


def write_image(rgb: np.ndarray, path: str | os.PathLike) -> None:
    """Write ``(H, W, 3)`` uint8/uint16 RGB as PNG (lossless).

    Raises:
        OutputError: cannot write.
    """
    fmt = "rgb48le" if rgb.dtype == np.uint16 else "rgb24"
    arr = rgb.astype("<u2").view(np.uint16) if rgb.dtype == np.uint16 else rgb
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt)
    if fmt == "rgb48le":  # the PNG encoder takes big-endian 16-bit
        fmt = "rgb48be"
        frame = frame.reformat(format=fmt)
    try:
        with av.open(media_url(path), "w", format="image2") as c:
            s = c.add_stream("png", rate=1)
            s.width, s.height = rgb.shape[1], rgb.shape[0]
            s.pix_fmt = fmt
            c.mux(s.encode(frame))
            c.mux(s.encode(None))
    except (av.error.FFmpegError, OSError) as e:
        if getattr(e, "errno", None) == 28:
            raise OutputError(f"{path}: no space left on device") from e
        raise OutputError(f"{path}: cannot write image ({getattr(e, 'strerror', None) or e})") from e


def encode_clip(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike,
    *,
    fps: Fraction | int = 25,
    codec: str = "libx264",
    crf: int = 12,
    pix_fmt: str = "yuv420p",
    tone_hz: float | None = 440.0,
    audio_codec: str = "aac",
    sample_rate: int = 48000,
) -> int:
    """Encode RGB frames to a video file, with a synthetic audio track (a tone with a beep each second).

    Used to build test and demo clips (e.g. from Vid4 LR frames).

    Args:
        frames: ``(H, W, 3)`` uint8 RGB frames.
        path: output file.
        fps: frame rate.
        codec, crf, pix_fmt: video encoder settings.
        tone_hz: audio tone frequency (``None``: no audio stream).
        audio_codec: audio encoder.
        sample_rate: audio rate in Hz.

    Returns:
        Frames written.
    """
    fps = Fraction(fps)
    n = 0
    with av.open(media_url(path), "w") as c:
        v = c.add_stream(codec, rate=fps)
        v.pix_fmt = pix_fmt
        v.options = {"crf": str(crf)} if codec in ("libx264", "libx265") else {}
        a = None
        for rgb in frames:
            if n == 0:
                v.height, v.width = rgb.shape[:2]
                if tone_hz is not None:
                    a = c.add_stream(audio_codec, rate=sample_rate)
                    a.layout = "stereo"
            c.mux(v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")))
            n += 1
        c.mux(v.encode(None))
        if a is not None:
            total = int(math.ceil(n / fps * sample_rate))
            fs = a.codec_context.frame_size or 1024
            for start in range(0, total, fs):
                t = (np.arange(start, min(start + fs, total)) / sample_rate).astype(np.float64)
                beep = (t % 1.0) < 0.1
                wave = (0.2 * np.sin(2 * np.pi * tone_hz * t) + 0.3 * beep * np.sin(2 * np.pi * 2 * tone_hz * t))
                data = np.stack([wave, wave]).astype(np.float32)
                af = av.AudioFrame.from_ndarray(data, format="fltp", layout="stereo")
                af.sample_rate = sample_rate
                af.pts = start
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    return n
