"""Split one video into chunks that workers upscale independently (``--devices``, ``--ray``).

A chunk is a run of output frames ``[first, end)`` plus the context its worker decodes around
it and throws away: ``lead`` frames before (a sliding window's past neighbours, or a recurrent
model's warm-up, as ``--resume`` uses) and ``tail`` frames after (a window's future neighbours).
Boundaries go at scene cuts where there are any near the target length, where no context is
needed (the shots are independent); elsewhere at a multiple of the clip length.

Exactness: per-frame and sliding-window models give the frames of a single run (a window never
reaches past its lead/tail). A recurrent model's hidden state at a boundary that is not a cut
is rebuilt from ``lead`` frames instead of the whole past: the same bound as the clip cross-fades
(``benchmarks/seams.py``), measured in the tests.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from upvid.errors import UsageError


@dataclass(frozen=True)
class Chunk:
    """One task: output frames ``[first, end)`` (``end`` ``None``: to the end of the video).

    Attributes:
        index: position in the video (names the segment file, orders the join).
        first, end: output frame numbers (input frame numbers of the video).
        lead, tail: context frames decoded before ``first`` / after ``end`` and dropped.
    """

    index: int
    first: int
    end: int | None
    lead: int
    tail: int

    @property
    def decode_first(self) -> int:
        return self.first - self.lead

    @property
    def decode_end(self) -> int | None:
        return None if self.end is None else self.end + self.tail


def context(family: str, frames: int, clip: int) -> tuple[int, int]:
    """``(lead, tail)`` a boundary that is not a cut needs: a sliding window's radius both ways; a
    recurrent model's warm-up of one clip before (its propagation reaches back), nothing after."""
    if family == "recurrent":
        return clip, 0
    r = frames // 2
    return r, r


def plan(total: int, family: str, frames: int, clip: int, chunk_frames: int, cuts: list[int] | None = None) -> list[Chunk]:
    """The chunks of a video of ``total`` frames.

    Args:
        total: frames in the video (the last chunk is open-ended, so an estimate loses nothing).
        family, frames, clip: the model's family, window size, clip length (``EngineConfig.chunk``).
        chunk_frames: the target chunk length.
        cuts: scene cuts (frame numbers), ascending; a boundary moves to the nearest cut within
            half a chunk of its target.

    Raises:
        UsageError: ``chunk_frames`` < 1.
    """
    if chunk_frames < 1:
        raise UsageError(f"--chunk-frames must be >= 1, got {chunk_frames}")
    cuts = sorted(c for c in (cuts or []) if 0 < c < total)
    step = clip if family == "recurrent" else 1
    lead, tail = context(family, frames, clip)
    bounds: list[tuple[int, bool]] = []  # (frame, at a cut)
    pos = 0
    while total - pos > chunk_frames + chunk_frames // 2:
        target = pos + chunk_frames
        k = bisect.bisect_left(cuts, target)
        near = [c for c in cuts[max(0, k - 1):k + 1] if pos < c and abs(c - target) <= chunk_frames // 2]
        if near:
            b = min(near, key=lambda c: abs(c - target))
            bounds.append((b, True))
        else:
            b = max(pos + step, (target // step) * step)
            bounds.append((b, False))
        pos = b
    out: list[Chunk] = []
    starts = [(0, True), *bounds]
    for i, (first, at_cut) in enumerate(starts):
        last = i == len(starts) - 1
        end = None if last else starts[i + 1][0]
        end_at_cut = last or starts[i + 1][1]
        out.append(Chunk(i, first, end, 0 if at_cut else min(lead, first), 0 if end_at_cut else tail))
    return out
