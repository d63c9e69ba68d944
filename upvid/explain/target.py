"""What ``upvid explain`` differentiates: one output frame of a model as a function of a span of LR frames.

The span is read from the video (:func:`read_span`); :func:`frame_function` feeds it to the
model as the engine does for that frame: a sliding-window model gets the window centred on the
frame (padded inside the span with the record's ``temporal_padding``; a span that starts or
ends the video pads exactly as the engine), a per-frame model only the frame, a recurrent model
the whole span as one clip.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import Tensor

from upvid.engine.temporal import pad_index
from upvid.errors import InputError
from upvid.models.upscaler import Upscaler


def default_span(model: Upscaler) -> int:
    """Frames read around the explained one: 7, or a sliding window's length if longer."""
    rec = model.record
    return max(7, rec.frames) if rec.family == "sliding-window" else 7


def window_in_span(model: Upscaler, target: int, n: int) -> list[int]:
    """Span indices of the sliding window centred on ``target`` (``n`` frames in the span)."""
    rec = model.record
    r = rec.frames // 2
    return [pad_index(target + k, target, r, n, rec.temporal_padding) for k in range(-r, r + 1)]


def frame_function(model: Upscaler, target: int, n: int) -> Callable[[Tensor], Tensor]:
    """``(n, 3, H, W)`` LR span in [0, 1] -> ``(3, sH, sW)`` output frame ``target`` of ``model``."""
    if model.record.family == "recurrent":
        if hasattr(model.net, "set_clip_position"):
            model.set_clip_position(0, True)  # the span is a whole sequence
        return lambda span: model(span[None])[0, target]
    idx = window_in_span(model, target, n)
    return lambda span: model(span[idx][None])[0, 0]


def read_span(path: Path, frame: int, span: int) -> tuple[np.ndarray, int, int]:
    """Decode ``span`` consecutive frames of a video (or image folder) around ``frame``.

    Returns:
        ``(frames (span', H, W, 3) uint8, index of the first, position of frame in them)``;
        ``span'`` is shorter only when the whole video is.

    Raises:
        InputError: the video is unreadable or has no frame ``frame``.
    """
    from upvid.io import probe, read_frames

    info = probe(path)
    ring: deque[np.ndarray] = deque(maxlen=span)
    last = frame + span // 2
    n = 0
    for f in read_frames(path, info, high_bit_depth=False):
        ring.append(f.rgb)
        n += 1
        if n > last:
            break
    if frame >= n:
        raise InputError(f"{path}: no frame {frame} (the video has {n})")
    first = n - len(ring)
    return np.stack(list(ring)), first, frame - first
