"""Interlaced sources: find them (the stream's field order, or FFmpeg's ``idet`` filter) and
deinterlace them with FFmpeg's ``bwdif`` filter through PyAV's filter graph, before the model.

A VSR model fed woven fields upscales the combing. ``bwdif`` (Bob Weaver Deinterlacing Filter,
FFmpeg ``libavfilter/vf_bwdif.c``) interpolates each field with a motion-adaptive filter; mode
``bwdif`` emits one frame per frame (same rate), ``bwdif-field`` one frame per field (double
rate, twice the temporal resolution).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from fractions import Fraction

import av
import numpy as np

from upvid.errors import UpvidError, UsageError
from upvid.io.probe import VideoInfo

log = logging.getLogger("upvid")

#: ``--deinterlace`` values.
MODES = ("auto", "off", "bwdif", "bwdif-field")

#: FFmpeg's ``AVFieldOrder``: 0 unknown, 1 progressive, 2 top first (TT), 3 bottom first (BB),
#: 4 top coded first, bottom displayed first (TB), 5 bottom coded first, top displayed first (BT).
INTERLACED_ORDERS = (2, 3, 4, 5)


def is_flagged_interlaced(info: VideoInfo) -> bool:
    """True when the stream header says its frames hold two fields (field order TT/BB/TB/BT)."""
    return info.field_order in INTERLACED_ORDERS


def resolve_mode(mode: str, info: VideoInfo, path=None) -> tuple[str, bool]:
    """The deinterlacer a job runs, and whether it deinterlaces every frame.

    ``auto``: ``bwdif`` on the frames flagged interlaced when the stream is flagged interlaced;
    for a file whose field order is unknown, ``bwdif`` when :func:`detect` (``idet``) finds
    interlaced frames; else ``off``. ``bwdif``/``bwdif-field`` given explicitly treat every
    frame as interlaced.

    Args:
        path: the file, for detection (``None``: a pipe, which cannot be read twice).

    Returns:
        ``(mode, every_frame)``.

    Raises:
        UsageError: an unknown mode.
    """
    if mode not in MODES:
        raise UsageError(f"--deinterlace must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != "auto":
        return mode, True
    if is_flagged_interlaced(info):
        return "bwdif", False
    if info.field_order == 0 and path is not None and info.codec in _MAYBE_INTERLACED:
        try:
            found = detect(path, info)
        except (av.error.FFmpegError, ValueError, OSError, UpvidError) as e:  # a damaged file: the decoder will say
            log.debug("%s: idet could not run (%s)", path, e)
            found = "progressive"
        if found != "progressive":
            log.info("%s: idet finds %s interlaced frames (the stream does not say); deinterlacing", path, found)
            return "bwdif", True
    return "off", False


#: Codecs that carry interlaced video (others are progressive-only, no need to look).
_MAYBE_INTERLACED = {"mpeg2video", "mpeg1video", "h264", "hevc", "mpeg4", "dvvideo", "vc1", "prores", "rawvideo",
                     "mjpeg", "ffv1", "dnxhd"}


def deinterlaced_info(info: VideoInfo, mode: str) -> VideoInfo:
    """The stream the model sees: progressive, in the filter's time base (half the input's); with
    ``bwdif-field`` at twice the frame rate and twice the frames."""
    if mode == "off":
        return info
    field = mode == "bwdif-field"
    return dataclasses.replace(info, field_order=1, time_base=info.time_base / 2,
                               fps=info.fps * 2 if field else info.fps, frames=info.frames * 2 if field else info.frames)


class Bwdif:
    """``bwdif`` on a stream's decoded frames (a callable for :func:`upvid.io.reader.decode_frames`).

    Args:
        stream: the input video stream (its size, pixel format and time base configure the graph).
        field: one output frame per field (double rate) instead of per frame.
        every_frame: deinterlace every frame (else only those flagged interlaced).

    Call it with each decoded :class:`av.VideoFrame` (``None`` at the end, to flush the frame it
    holds back); it returns the deinterlaced frames ready so far, timestamps in
    :attr:`time_base`.
    """

    def __init__(self, stream: av.video.stream.VideoStream, field: bool = False, every_frame: bool = True) -> None:
        self.graph = av.filter.Graph()
        src = self.graph.add_buffer(template=stream)
        # deint 0: every frame; 1: only frames flagged interlaced. parity -1: each frame's own field order
        bw = self.graph.add("bwdif", f"mode={1 if field else 0}:parity=-1:deint={0 if every_frame else 1}")
        sink = self.graph.add("buffersink")
        src.link_to(bw)
        bw.link_to(sink)
        self.graph.configure()
        #: bwdif (as yadif) outputs in half the input's time base, in both modes
        self.time_base = (stream.time_base or Fraction(1, 90000)) / 2

    def __call__(self, frame: av.VideoFrame | None) -> list[av.VideoFrame]:
        self.graph.push(frame)
        out = []
        while True:
            try:
                out.append(self.graph.pull())
            except (av.error.BlockingIOError, av.error.EOFError):
                return out


def combing(rgb: np.ndarray) -> float:
    """Combing of a frame: mean |row i - row i+1| over mean |row i - row i+2| (luma-weighted RGB).

    Woven fields of a moving scene differ row to row far more than rows of one field do (> 1.5);
    a progressive picture is smooth both ways (about 0.5-1).

    Args:
        rgb: ``(H, W, 3)`` uint8/uint16 frame.
    """
    y = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    adjacent = np.abs(np.diff(y, axis=0)).mean()
    same_field = np.abs(y[2:] - y[:-2]).mean()
    return float(adjacent / max(same_field, 1e-9))


def detect(path, info: VideoInfo, frames: int = 60) -> str:
    """Classify the first ``frames`` frames with FFmpeg's ``idet`` filter (through PyAV).

    Returns:
        ``"tff"``, ``"bff"`` or ``"progressive"``: the majority of idet's multi-frame verdicts.
    """
    from upvid.io.probe import open_input

    counts = {"tff": 0, "bff": 0, "progressive": 0}
    with open_input(path) as c:
        stream = c.streams[info.stream_index] if info.stream_index >= 0 else c.streams.video[0]
        graph = av.filter.Graph()
        src = graph.add_buffer(template=stream)
        idet = graph.add("idet")
        sink = graph.add("buffersink")
        src.link_to(idet)
        idet.link_to(sink)
        graph.configure()

        def pulled() -> Iterator[av.VideoFrame]:
            while True:
                try:
                    yield graph.pull()
                except (av.error.BlockingIOError, av.error.EOFError):
                    return

        n = 0
        for frame in c.decode(stream):
            graph.push(frame)
            for out in pulled():
                verdict = (out.metadata.get("lavfi.idet.multiple.current_frame") or "").lower()
                if verdict in counts:
                    counts[verdict] += 1
            n += 1
            if n >= frames:
                break
    return max(counts, key=lambda k: counts[k]) if any(counts.values()) else "progressive"
