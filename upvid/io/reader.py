"""Decode a video stream into RGB frames, one at a time (PyAV). Memory: one frame."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import av
import numpy as np

from upvid.errors import InputError
from upvid.io.span import Span
from upvid.frames import YUV_MATRICES, Yuv420
from upvid.io.probe import VideoInfo, open_input

log = logging.getLogger(__name__)


@dataclass
class DecodedFrame:
    """One decoded picture.

    Attributes:
        rgb: ``(H, W, 3)`` RGB, ``uint8`` (8-bit sources) or ``uint16`` full-scale (deeper sources);
            ``None`` when ``yuv`` holds the picture.
        pts: presentation timestamp in the video stream's time base (``None`` if the container has none).
        index: 0-based decode-order index of the frame among those emitted.
        yuv: the 4:2:0 planes instead of RGB (``read_frames(..., yuv=True)``: colour conversion in the engine).
    """

    rgb: np.ndarray | None
    pts: int | None
    index: int
    yuv: Yuv420 | None = None

    @property
    def picture(self) -> np.ndarray | Yuv420:
        """What the engine takes: the :class:`~upvid.frames.Yuv420` planes if present, else the RGB array."""
        return self.yuv if self.yuv is not None else self.rgb


#: Decoder formats handed to the engine as :class:`~upvid.frames.Yuv420` planes, and their bit depth.
PLANAR_FORMATS = {"yuv420p": 8, "yuvj420p": 8, "yuv420p10le": 10}


def yuv_eligible(info: VideoInfo) -> bool:
    """Whether ``read_frames(..., yuv=True)`` hands out 4:2:0 planes for this stream.

    True for 8- and 10-bit 4:2:0 sources (``yuv420p``/``yuvj420p``/``yuv420p10le``, even size)
    with a matrix :mod:`upvid.engine.colour` knows; other sources stay RGB (converted by libswscale).
    """
    return (info.pix_fmt in PLANAR_FORMATS and info.width % 2 == 0 and info.height % 2 == 0
            and info.colorspace in YUV_MATRICES)


def read_frames(
    path: str | os.PathLike, info: VideoInfo, *, high_bit_depth: bool | None = None, max_errors: int = 50,
    yuv: bool = False, span: Span | None = None, deinterlace: tuple[str, bool] = ("off", False),
) -> Iterator[DecodedFrame]:
    """Decode the first video stream of ``path`` to RGB, converting with the stream's own colour matrix and range.

    Corrupt packets are skipped with a warning (the decoder resynchronises at the next keyframe);
    more than ``max_errors`` decode errors in a row, or none decodable at all, is an error.

    Args:
        path: the file.
        info: its :func:`upvid.io.probe.probe` result.
        high_bit_depth: emit ``uint16`` RGB (``rgb48le``); default: when the source has > 8 bits.
        max_errors: consecutive decode errors tolerated.
        yuv: for :func:`yuv_eligible` streams, hand out the decoder's 4:2:0 planes
            (:attr:`DecodedFrame.yuv`) instead of RGB, for conversion in the engine (which keeps
            out-of-gamut values libswscale's RGB would clip). With ``high_bit_depth`` an 8-bit
            limited-range source's planes are handed out as 10-bit codes (times 4, exact).
        span: only the frames of this stretch (``--start``/``--frames``): those before it are
            decoded but not converted, decoding stops after it. ``index`` stays the frame's
            number in the whole video.
        deinterlace: ``(mode, every_frame)`` of :func:`upvid.io.deinterlace.resolve_mode`; with a
            mode other than ``off`` the frames pass through ``bwdif`` and ``info`` must be
            :func:`~upvid.io.deinterlace.deinterlaced_info` (its time base, rate and count).

    Yields:
        :class:`DecodedFrame` in presentation order.

    Raises:
        InputError: unreadable, or no frame could be decoded.
    """
    with open_input(path) as c:
        yield from decode_frames(c, info, path, high_bit_depth=high_bit_depth, max_errors=max_errors, yuv=yuv,
                                 span=span, filters=deinterlacer(c, info, *deinterlace))


def deinterlacer(c: av.container.InputContainer, info: VideoInfo, mode: str, every_frame: bool = True):
    """The ``bwdif`` filter for ``mode`` on ``c``'s video stream, or ``None`` for ``off``."""
    if mode == "off":
        return None
    from upvid.io.deinterlace import Bwdif

    stream = c.streams[info.stream_index] if info.stream_index >= 0 else c.streams.video[0]
    try:
        return Bwdif(stream, field=mode == "bwdif-field", every_frame=every_frame)
    except (av.error.FFmpegError, ValueError) as e:
        raise InputError(f"{info.path}: cannot set up the deinterlacer ({e})") from e


def decode_frames(
    c: av.container.InputContainer, info: VideoInfo, path: str | os.PathLike, *, high_bit_depth: bool | None = None,
    max_errors: int = 50, yuv: bool = False, span: Span | None = None,
    others: Callable[[av.Packet], None] | None = None, filters: Callable[[av.VideoFrame], list] | None = None,
) -> Iterator[DecodedFrame]:
    """:func:`read_frames` on an open container (a file, or a stream on stdin read once).

    Args:
        c, info, path: the container, its :func:`~upvid.io.probe.describe` result, its name in messages.
        others: when given, the audio/subtitle packets of ``info.others`` are demuxed with the
            video (in file order) and handed to it, so a stream is read in one pass.
        filters: a frame filter (deinterlacing): decoded frame -> the frames to emit (0, 1 or 2),
            called with ``None`` at the end to flush.
        high_bit_depth, max_errors, yuv, span: as for :func:`read_frames`.
    """
    deep = info.bit_depth > 8 if high_bit_depth is None else high_bit_depth
    full_range = info.color_range == 2 or info.pix_fmt == "yuvj420p"
    src_bits = PLANAR_FORMATS.get(info.pix_fmt, 8)
    planar = yuv and yuv_eligible(info) and (deep == (src_bits > 8) or (deep and not full_range))
    promote = planar and deep and src_bits == 8  # 8-bit limited-range codes -> 10-bit (x4)
    bits = 10 if deep else 8
    fmt = info.pix_fmt if planar else "rgb48le" if deep else "rgb24"
    n = 0
    errors = 0
    resized = False
    last_t: float | None = None
    stream = c.streams[info.stream_index] if info.stream_index >= 0 else c.streams.video[0]
    stream.thread_type = "AUTO"
    extra = [c.streams[o.index] for o in info.others] if others is not None else []
    packets = c.demux(stream, *extra)
    flushed = False
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            if filters is None or flushed:
                break
            flushed, packet = True, None  # drain the filter (bwdif holds a frame back)
        except av.error.FFmpegError as e:  # demuxer-level corruption: stop here, keep what we have
            log.warning("%s: demux error after %d frames (%s); stopping", path, n, e)
            break
        if packet is None:
            frames = filters(None)
        elif packet.stream.index != stream.index:
            if packet.size or packet.pts is not None:
                others(packet)
            continue
        else:
            try:
                frames = packet.decode()
                errors = 0
                if filters is not None:
                    frames = [g for f in frames for g in filters(f)]
            except (av.error.FFmpegError, ValueError) as e:  # ValueError: a frame the filter graph refuses
                errors += 1
                log.warning("%s: skipping a corrupt packet at pts %s (%s)", path, packet.pts, e)
                if errors > max_errors:
                    raise InputError(f"{path}: {errors} corrupt packets in a row; giving up after {n} frames") from e
                continue
        for frame in frames:
            if span is not None:
                t = (float(frame.pts * frame.time_base) - info.start_time
                     if frame.pts is not None and frame.time_base is not None else None)
                if span.past(n, t):
                    return
                if not span.contains(n, t):
                    n += 1
                    continue
            rng = "JPEG" if frame.color_range == 2 or frame.format.name.startswith("yuvj") else None
            try:
                if (frame.width, frame.height) != (info.width, info.height):
                    if not resized:
                        log.warning("%s: frame size changes mid-stream (%dx%d -> %dx%d); rescaling to the first size",
                                    path, info.width, info.height, frame.width, frame.height)
                        resized = True
                    rgb = frame.to_ndarray(format=fmt, width=info.width, height=info.height, src_color_range=rng)
                elif planar and frame.format.name == fmt:
                    rgb = frame.to_ndarray()  # the decoder's planes, untouched
                else:
                    rgb = frame.to_ndarray(format=fmt, src_color_range=rng)
            except (av.error.FFmpegError, ValueError) as e:  # a damaged frame the converter refuses
                log.warning("%s: skipping a frame that cannot be converted (%s)", path, e)
                continue
            if frame.pts is not None and frame.time_base is not None:
                last_t = float(frame.pts * frame.time_base)
            if planar:  # the planes as decoded (a mid-stream size/format change is resampled to them)
                planes = rgb.astype(np.uint16) << 2 if promote else rgb
                yield DecodedFrame(rgb=None, pts=frame.pts, index=n, yuv=Yuv420(planes, info.colorspace, full_range, bits))
            else:
                yield DecodedFrame(rgb=rgb, pts=frame.pts, index=n)
            n += 1
    if n == 0:
        raise InputError(f"{path}: no decodable video frame")
    # compare with the duration the header announced; the container's may be a longer audio track's,
    # so then the file must also hold nothing a second past the last frame (a cut file does not;
    # interleaving keeps audio within about that of the video)
    if info.duration > 0 and last_t is not None:
        end = last_t + 2 / float(info.fps or 25)
        if end < info.start_time + 0.9 * info.duration and (info.video_duration or not _holds_data_after(path, end + 1.0)):
            log.warning("%s: decoding stopped at %.2f s of %.2f s (truncated or damaged input)", path,
                        last_t - info.start_time, info.duration)


def _holds_data_after(path: str | os.PathLike, t: float) -> bool:
    """Whether any stream of the file at ``path`` has a packet that starts after ``t`` seconds
    (demuxed, not decoded); ``False`` when it cannot be read again (a pipe)."""
    try:
        with open_input(path) as c:
            for packet in c.demux():
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is not None and packet.time_base is not None and float(ts * packet.time_base) > t:
                    return True
    except Exception:  # noqa: BLE001 - a stream on stdin, a damaged tail: nothing to show
        return False
    return False
