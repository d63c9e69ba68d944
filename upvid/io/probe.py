"""Probe a media file: what the video stream is and which other streams ride along (PyAV)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from upvid.errors import InputError
from upvid.io.hdr import HdrMetadata, from_frame


@dataclass(frozen=True)
class StreamInfo:
    """A non-video stream: index in the container, type, codec name, language."""

    index: int
    type: str
    codec: str
    language: str | None = None


@dataclass(frozen=True)
class VideoInfo:
    """What upvid needs to know about an input video.

    Attributes:
        path: the file.
        container: demuxer name (e.g. ``"mov,mp4,m4a,3gp,3g2,mj2"``).
        codec: video codec name.
        width, height: coded frame size in pixels.
        fps: average frame rate (frames/s) as a Fraction (guessed when the container has none).
        time_base: video stream time base (seconds per pts tick).
        frames: frame count from the header, or an estimate from duration x fps (0 if unknown).
        duration: seconds (0.0 if unknown).
        start_time: seconds of the first video pts (often 0).
        pix_fmt: decoder pixel format (``yuv420p``, ``yuv420p10le``...).
        bit_depth: bits per component of ``pix_fmt`` (8, 10, 12...).
        rotation: display rotation in degrees (counter-clockwise, from the display matrix).
        sample_aspect_ratio: SAR as a Fraction (1 if square or unknown).
        color_primaries, color_trc, colorspace, color_range: codec colour tags (ints, ffmpeg enums).
        others: the audio and subtitle streams.
        stream_index: container index of the video stream (-1: the first video stream).
        field_order: FFmpeg's ``AVFieldOrder`` of the stream (0 unknown, 1 progressive, 2-5 interlaced).
        hdr: HDR10 mastering-display / content-light metadata of the first frame (:mod:`upvid.io.hdr`).
        video_duration: ``duration`` is the video stream's own (its header or a DURATION tag),
            not the container's, which may be a longer audio track's.
    """

    path: Path
    container: str
    codec: str
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frames: int
    duration: float
    start_time: float
    pix_fmt: str
    bit_depth: int
    rotation: int = 0
    sample_aspect_ratio: Fraction = Fraction(1)
    color_primaries: int = 2
    color_trc: int = 2
    colorspace: int = 2
    color_range: int = 0
    others: tuple[StreamInfo, ...] = field(default_factory=tuple)
    stream_index: int = -1
    field_order: int = 0
    hdr: HdrMetadata | None = None
    video_duration: bool = True  # ``duration`` is the video stream's own (not the container's)

    @property
    def audio(self) -> list[StreamInfo]:
        return [s for s in self.others if s.type == "audio"]

    @property
    def subtitles(self) -> list[StreamInfo]:
        return [s for s in self.others if s.type == "subtitle"]


def media_url(path: str | os.PathLike) -> str:
    """A local path as FFmpeg must be given it: always a file, never a protocol. ``a:b.mp4`` or
    ``http:x.mp4`` would be read as the protocol before the colon (a network request for a
    local file named ``http:x.mp4``), so a path with a colon gets the ``file:`` protocol."""
    text = os.fspath(path)
    return f"file:{text}" if ":" in text else text


def open_input(path: str | os.PathLike) -> av.container.InputContainer:
    """Open ``path`` for demuxing.

    Raises:
        InputError: missing, a directory, unreadable, or not a media file PyAV can parse.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a video file")
    if not os.access(p, os.R_OK):
        raise InputError(f"{p}: permission denied")
    if not p.is_file():  # a FIFO or a device: probing would consume what the reader needs again
        raise InputError(f"{p}: not a regular file (a pipe or device); save the stream to a file first")
    try:
        return av.open(media_url(p), "r", metadata_errors="replace")
    except (av.error.InvalidDataError, av.error.EOFError) as e:
        raise InputError(f"{p}: not a video file PyAV/FFmpeg can read ({e.strerror or e})") from e
    except av.error.FFmpegError as e:
        raise InputError(f"{p}: cannot open ({e.strerror or e})") from e
    except (OSError, ValueError, UnicodeError, OverflowError) as e:  # damaged headers PyAV cannot parse
        raise InputError(f"{p}: cannot open ({type(e).__name__}: {e})") from e


def _tagged_duration(metadata: dict) -> float | None:
    """Seconds in a ``DURATION`` tag (``HH:MM:SS.fraction``, as Matroska muxers write it), or ``None``."""
    value = next((v for k, v in metadata.items() if k.upper() == "DURATION"), None)
    try:
        h, m, sec = str(value).split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except (ValueError, TypeError):
        return None


def video_stream(c: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first video stream that is not an attached picture (cover art), or ``None``."""
    for v in c.streams.video:
        try:
            if v.disposition & av.stream.Disposition.attached_pic:
                continue
        except (AttributeError, TypeError):
            pass
        return v
    return None


def bit_depth_of(pix_fmt: str | None) -> int:
    """Bits per component of a pixel format name (8 if unknown)."""
    if not pix_fmt:
        return 8
    try:
        fmt = av.VideoFormat(pix_fmt)
        return max(c.bits for c in fmt.components)
    except (ValueError, av.error.FFmpegError):
        return 8


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read the container header of ``path`` and describe its first video stream.

    Raises:
        InputError: not readable, or no video stream (e.g. an audio-only file).
    """
    try:
        return _probe(path)
    except InputError:
        raise
    except (av.error.FFmpegError, ValueError, UnicodeError, OverflowError, ZeroDivisionError, AttributeError) as e:
        raise InputError(f"{path}: damaged or unsupported header ({type(e).__name__}: {e})") from e


def _probe(path: str | os.PathLike) -> VideoInfo:
    with open_input(path) as c:
        return describe(c, path)


def describe(c: av.container.InputContainer, path: str | os.PathLike, *, read_first_frame: bool = True) -> VideoInfo:
    """Describe the first video stream of an open container (a file, or a stream on stdin).

    Args:
        c: the container.
        path: its name in messages (``-`` for stdin).
        read_first_frame: decode the first frame for its rotation (``False`` for a pipe, which
            cannot be read twice: rotation 0).

    Raises:
        InputError: no video stream, an unsupported codec, no frame size.
    """
    v = video_stream(c)
    if v is None:
        kinds = ", ".join(sorted({s.type for s in c.streams})) or "no streams"
        if c.streams.video:
            kinds += ", cover art only"
        raise InputError(f"{path}: no video stream ({kinds})")
    cc = v.codec_context
    if cc is None or not cc.name or cc.name == "none":
        tag = getattr(cc, "codec_tag", None) if cc is not None else None
        raise InputError(f"{path}: video codec not supported by this FFmpeg build (tag {tag or 'unknown'})")
    if not cc.width or not cc.height:
        raise InputError(f"{path}: video stream has no frame size (corrupt or unsupported codec)")
    fps = v.average_rate or v.guessed_rate or v.base_rate or Fraction(25)
    tb = v.time_base or Fraction(1, 90000)
    own = _tagged_duration(v.metadata)  # Matroska keeps per-track durations as a DURATION tag
    if v.duration is not None:
        duration, own = float(v.duration * tb), True
    elif own is not None:
        duration, own = own, True
    elif c.duration is not None:
        duration, own = c.duration / av.time_base, False  # the longest stream's: maybe the audio's
    else:
        duration, own = 0.0, False
    frames = v.frames or int(round(duration * float(fps)))
    start = float(v.start_time * tb) if v.start_time is not None else 0.0
    rotation = 0
    hdr = None
    try:
        for frame in (c.decode(v) if read_first_frame else ()):
            rotation = int(frame.rotation or 0)
            hdr = from_frame(frame)
            break
    except av.error.FFmpegError:
        pass
    others = tuple(
        StreamInfo(s.index, s.type, s.codec_context.name if s.codec_context else "none", s.language)
        for s in c.streams
        if s.index != v.index and s.type in ("audio", "subtitle")
    )
    return VideoInfo(
        path=Path(path), container=c.format.name, codec=cc.name, width=cc.width, height=cc.height,
        fps=Fraction(fps), time_base=Fraction(tb), frames=int(frames), duration=duration, video_duration=own,
        start_time=start, pix_fmt=cc.pix_fmt or "yuv420p", bit_depth=bit_depth_of(cc.pix_fmt),
        rotation=rotation, sample_aspect_ratio=Fraction(v.sample_aspect_ratio or 1) or Fraction(1),
        color_primaries=int(cc.color_primaries), color_trc=int(cc.color_trc),
        colorspace=int(cc.colorspace), color_range=int(cc.color_range), others=others,
        stream_index=v.index, field_order=int(getattr(cc, "field_order", 0) or 0), hdr=hdr,
    )
