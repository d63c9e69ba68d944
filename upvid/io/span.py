"""A stretch of the input to upscale (``--start``/``--duration`` or ``--frames A:B``): a preview.

The reader decodes up to the stretch without converting the frames it skips, and stops after
it; the output's video, audio and subtitles start at 0 at the stretch's first frame
(:func:`upvid.io.mux.assemble` with a ``window``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from upvid.errors import UsageError


@dataclass(frozen=True)
class Span:
    """Frames ``[first, end)`` by number, and/or by time ``[start_s, end_s)`` in seconds from the
    video's first frame; a frame is inside when it is inside both.

    Attributes:
        first, end: frame numbers (``end`` ``None``: to the end).
        start_s, end_s: seconds from the video's start (``end_s`` ``None``: to the end).
    """

    first: int = 0
    end: int | None = None
    start_s: float = 0.0
    end_s: float | None = None

    def contains(self, index: int, t: float | None) -> bool:
        """Is frame ``index``, shown at ``t`` seconds (``None``: unknown), inside?"""
        if index < self.first or (self.end is not None and index >= self.end):
            return False
        if t is None:
            return True
        return t >= self.start_s - 1e-6 and (self.end_s is None or t < self.end_s - 1e-6)

    def past(self, index: int, t: float | None) -> bool:
        """Is frame ``index`` after the stretch (decoding can stop)?"""
        return (self.end is not None and index >= self.end) or (
            self.end_s is not None and t is not None and t >= self.end_s - 1e-6)

    def describe(self) -> str:
        """For the fingerprint and messages: ``frames 10:20`` / ``12.5s+3s``."""
        if self.start_s or self.end_s is not None:
            return f"{self.start_s:g}s" + (f"-{self.end_s:g}s" if self.end_s is not None else "-end")
        return f"frames {self.first}:{'' if self.end is None else self.end}"


def parse_time(text: str, option: str) -> float:
    """``12.5``, ``12.5s``, ``1:02.5`` or ``00:01:02.500`` -> seconds.

    Raises:
        UsageError: anything else, or a negative / non-finite value.
    """
    t = text.strip().removesuffix("s")
    m = re.fullmatch(r"(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?)", t)
    if not m:
        raise UsageError(f"{option} must be seconds (12.5) or [HH:]MM:SS[.mmm], got {text!r}")
    sec = 0.0
    for p in (g for g in m.groups() if g is not None):
        sec = sec * 60 + float(p)
    if not math.isfinite(sec):
        raise UsageError(f"{option} must be finite, got {text!r}")
    return sec


def parse_span(start: str | None, duration: str | None, frames: str | None) -> Span | None:
    """The ``--start``/``--duration``/``--frames`` options as a :class:`Span` (``None``: all).

    Raises:
        UsageError: both forms given, a malformed value, an empty stretch.
    """
    if frames is not None:
        if start is not None or duration is not None:
            raise UsageError("give --frames A:B, or --start/--duration, not both")
        m = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", frames)
        if not m or not (m.group(1) or m.group(2)):
            raise UsageError(f"--frames must be A:B (frame numbers, B excluded; A: or :B for an open end), got {frames!r}")
        a = int(m.group(1) or 0)
        b = int(m.group(2)) if m.group(2) else None
        if b is not None and b <= a:
            raise UsageError(f"--frames {frames}: the end must be after the start")
        return Span(first=a, end=b)
    if start is None and duration is None:
        return None
    s = parse_time(start, "--start") if start is not None else 0.0
    d = parse_time(duration, "--duration") if duration is not None else None
    if d is not None and d <= 0:
        raise UsageError(f"--duration must be > 0, got {duration!r}")
    return Span(start_s=s, end_s=None if d is None else s + d)
