"""Split one video into chunks that workers upscale independently (``--devices``, ``--ray``).

A chunk is a run of output frames ``[first, end)`` plus the context its worker decodes around
it and throws away: ``lead`` frames before (a sliding window's past neighbours, or a recurrent
model's clips, as ``--resume`` uses) and ``tail`` frames after (a window's future neighbours, or
the end of a recurrent clip). Boundaries go at scene cuts where there are any near the target
length, where no context is needed (the shots are independent); elsewhere, for a recurrent
model, at a clip start of the engine's schedule.

Exactness: every chunk's frames equal a single run's. A sliding window never reaches past its
lead/tail. A recurrent chunk starts at a clip start of its shot's schedule and runs the very
clips (and cross-fades) of a single run over its frames: from the start of the clip before
(``lead``) to the end of the clip that completes its last frame (``tail``).
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
        origin: recurrent models: the position of the first decoded frame in its shot's clip
            schedule (:meth:`upvid.engine.Engine.run`).
    """

    index: int
    first: int
    end: int | None
    lead: int
    tail: int
    origin: int = 0

    @property
    def decode_first(self) -> int:
        return self.first - self.lead

    @property
    def decode_end(self) -> int | None:
        return None if self.end is None else self.end + self.tail


def plan(total: int, family: str, frames: int, clip: int, chunk_frames: int, cuts: list[int] | None = None,
         overlap: int = 0, grid: int = 1) -> list[Chunk]:
    """The chunks of a video of ``total`` frames.

    Args:
        total: frames in the video (the last chunk is open-ended, so an estimate loses nothing).
        family, frames: the model's family and window size.
        clip, overlap, grid: recurrent models: the clip length, the overlap and the clip grid of
            the engine's schedule (:func:`upvid.engine.temporal.clip_starts`).
        chunk_frames: the target chunk length.
        cuts: scene cuts (frame numbers), ascending; a boundary moves to the nearest cut within
            half a chunk of its target.

    Returns:
        Chunks whose outputs equal a single run: a sliding window decodes its radius around each
        boundary; a recurrent chunk starts at a clip start of its shot's schedule, decodes from
        the start of the clip before (``resume_start``) and on to the end of the clip that
        completes its last frame (``overlap`` more).

    Raises:
        UsageError: ``chunk_frames`` < 1.
    """
    from upvid.engine.temporal import clip_starts, resume_start

    if chunk_frames < 1:
        raise UsageError(f"--chunk-frames must be >= 1, got {chunk_frames}")
    cuts = sorted(c for c in (cuts or []) if 0 < c < total)
    recurrent = family == "recurrent"

    def shot_of(b: int) -> int:
        return max([0, *[c for c in cuts if c <= b]])

    def snap(target: int, pos: int) -> int:
        """A recurrent boundary: the clip start of its shot's schedule nearest ``target``, after ``pos``."""
        shot = shot_of(target)
        best = None
        for s, _ in clip_starts(clip, overlap, grid, limit=target - shot + clip):
            b = shot + s
            if b > pos and (best is None or abs(b - target) < abs(best - target)):
                best = b
        return best if best is not None else target

    bounds: list[tuple[int, bool]] = []  # (frame, at a cut)
    pos = 0
    while total - pos > chunk_frames + chunk_frames // 2:
        target = pos + chunk_frames
        k = bisect.bisect_left(cuts, target)
        near = [c for c in cuts[max(0, k - 1):k + 1] if pos < c and abs(c - target) <= chunk_frames // 2]
        if near:
            b, at_cut = min(near, key=lambda c: abs(c - target)), True
        else:
            b, at_cut = (snap(target, pos) if recurrent else target), False
        if b <= pos or total - b < 1:
            break
        bounds.append((b, at_cut))
        pos = b
    r = frames // 2
    out: list[Chunk] = []
    starts = [(0, True), *bounds]
    for i, (first, at_cut) in enumerate(starts):
        last = i == len(starts) - 1
        end = None if last else starts[i + 1][0]
        end_at_cut = last or starts[i + 1][1]
        if not recurrent:
            out.append(Chunk(i, first, end, 0 if at_cut else min(r, first), 0 if end_at_cut else r))
            continue
        shot = shot_of(first)
        origin = 0 if at_cut else resume_start(first - shot, clip, overlap, grid, total - shot)
        tail = 0 if end_at_cut else overlap  # the end is a clip start: the clip before ends `overlap` later
        out.append(Chunk(i, first, end, first - shot - origin if not at_cut else 0, tail, origin))
    return out
