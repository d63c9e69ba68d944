"""Pick tile (and sliding-window batch) sizes from free device memory and the model's measured cost.

On CUDA the planner runs the model once on a small probe clip, reads the peak memory it took per
LR pixel and frame, and picks the largest tile (multiple of 8) whose estimate fits in a share of
the free memory; the engine's out-of-memory back-off covers any misestimate. On CPU it keeps the
model's default tile: host memory is large, and a failed allocation is also backed off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from upvid.models.upscaler import Upscaler

PROBE = 64           # probe tile edge in LR px
BUDGET_SHARE = 0.6   # share of free memory the model may use


@dataclass(frozen=True)
class Plan:
    """Planner output: ``tile`` in LR px (0: whole frame) and ``chunk`` (sliding-window batch)."""

    tile: int
    chunk: int
    bytes_per_px: float


def tile_for_budget(budget: float, bytes_per_px: float, frames: int, height: int, width: int, multiple: int = 8) -> int:
    """Largest square tile whose estimated memory fits ``budget``.

    Args:
        budget: bytes available to the model.
        bytes_per_px: measured peak bytes per LR pixel per input frame.
        frames: frames per model call (clip length or window).
        height, width: frame size in LR px.
        multiple: round the tile down to this.

    Returns:
        0 if the whole frame fits, else the tile edge (at least ``multiple``).
    """
    px = budget / max(bytes_per_px * frames, 1e-9)
    if px >= height * width:
        return 0
    edge = int(math.sqrt(px)) // multiple * multiple
    return max(edge, multiple)


def measure_bytes_per_px(model: Upscaler, device: torch.device, dtype: torch.dtype, frames: int) -> float:
    """Peak CUDA bytes per LR pixel per frame of one forward on a ``PROBE``-px probe clip."""
    from upvid.engine.device import autocast

    x = torch.rand(1, frames, 3, PROBE, PROBE, device=device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    with autocast(device, dtype):
        model(x)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - base
    return peak / (PROBE * PROBE * frames)


def plan(model: Upscaler, device: torch.device, dtype: torch.dtype, frames: int, height: int, width: int,
         default_tile: int, default_chunk: int) -> Plan:
    """Choose tile and sliding-window batch for a ``height x width`` stream on ``device``."""
    if device.type != "cuda":
        return Plan(tile=default_tile, chunk=default_chunk, bytes_per_px=float("nan"))
    bpp = measure_bytes_per_px(model, device, dtype, frames)
    free, _ = torch.cuda.mem_get_info(device)
    budget = free * BUDGET_SHARE
    tile = tile_for_budget(budget, bpp, frames, height, width, max(8, model.record.size_multiple))
    chunk = default_chunk
    if model.family == "sliding-window" and tile == 0:
        chunk = int(max(1, min(32, budget // max(bpp * frames * height * width, 1))))
    return Plan(tile=tile, chunk=chunk, bytes_per_px=bpp)
