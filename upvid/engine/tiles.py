"""Spatial tiling with overlap and seam-free blending.

A frame of ``H x W`` LR pixels is covered by equal-size tiles (``tile`` px, or the frame size
if smaller) whose starts are spread evenly so that neighbours share at least ``overlap`` px.
Each tile's output is weighted by a separable ramp that is exactly zero within ``margin`` LR px
of an interior tile edge (where the network lacks context) and rises linearly to 1 across the
rest of the overlap; outputs are accumulated and normalised by the summed weights. A network
whose receptive field is within ``margin`` px therefore gives exactly its untiled output.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from upvid.errors import OutOfMemoryError


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread tile starts along one axis.

    Args:
        length: axis length in LR px.
        tile: tile size in LR px (``<= 0`` or ``>= length``: one tile).
        overlap: minimum overlap between neighbours in LR px (``< tile``).

    Returns:
        Sorted starts; every tile spans ``[s, s + min(tile, length))``; the last ends at ``length``.

    Raises:
        ValueError: if ``overlap >= tile``.
    """
    if tile <= 0 or tile >= length:
        return [0]
    if overlap >= tile:
        raise ValueError(f"tile overlap {overlap} must be smaller than the tile {tile}")
    n = math.ceil((length - overlap) / (tile - overlap))
    if n <= 1:
        return [0]
    return sorted({round(i * (length - tile) / (n - 1)) for i in range(n)})


def _axis_weight(start: int, size: int, length: int, margin: int, overlap: int, scale: int) -> Tensor:
    """1-D weight (HR resolution) of the tile at ``start`` along an axis."""
    pos = torch.arange(size * scale, dtype=torch.float32) / scale + 0.5 / scale  # LR coordinate of HR px centres
    w = torch.ones(size * scale)
    ramp = max(overlap - 2 * margin, 1)
    if start > 0:  # interior left edge
        w = torch.minimum(w, ((pos - margin) / ramp).clamp(0, 1))
    if start + size < length:  # interior right edge
        w = torch.minimum(w, ((size - pos - margin) / ramp).clamp(0, 1))
    return w


def default_margin(overlap: int) -> int:
    """Zero-weight band at interior tile edges: a quarter of the overlap (LR px)."""
    return overlap // 4


def run_tiled(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    scale: int,
    tile: int,
    overlap: int,
    *,
    tile_batch: int = 1,
    margin: int | None = None,
) -> Tensor:
    """Apply ``fn`` tile by tile and stitch.

    Args:
        fn: ``(N, T, C, th, tw) -> (N, T_out, C, s*th, s*tw)``.
        x: ``(B, T, C, H, W)`` float input.
        scale: ``s``.
        tile: tile size in LR px (0: whole frame).
        overlap: tile overlap in LR px.
        tile_batch: tile positions per call to ``fn`` (each call gets ``B * tile_batch`` samples).
        margin: zero-weight band in LR px (default ``overlap // 4``).

    Returns:
        ``(B, T_out, C, s*H, s*W)`` float32 on ``x``'s device.
    """
    b, t, c, h, w = x.shape
    if tile <= 0 or (tile >= h and tile >= w):
        return fn(x).float()
    norm = _frame_buffer((1, 1, 1, h * scale, w * scale), x.device)
    overlap = min(overlap, tile - 1)
    margin = default_margin(overlap) if margin is None else margin
    th, tw = min(tile, h), min(tile, w)
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    coords = [(y0, x0) for y0 in ys for x0 in xs]
    out = torch.empty(0)
    wy = {y0: _axis_weight(y0, th, h, margin, overlap, scale).to(x.device) for y0 in ys}
    wx = {x0: _axis_weight(x0, tw, w, margin, overlap, scale).to(x.device) for x0 in xs}
    for i in range(0, len(coords), tile_batch):
        group = coords[i : i + tile_batch]
        batch = torch.cat([x[..., y0 : y0 + th, x0 : x0 + tw] for y0, x0 in group])
        res = fn(batch).float().unflatten(0, (len(group), b))
        if out.numel() == 0:
            out = _frame_buffer((b, res.shape[2], c, h * scale, w * scale), x.device)
        for (y0, x0), r in zip(group, res):
            weight = wy[y0][:, None] * wx[x0][None, :]
            ys_, xs_ = slice(y0 * scale, (y0 + th) * scale), slice(x0 * scale, (x0 + tw) * scale)
            out[..., ys_, xs_] += r * weight
            norm[..., ys_, xs_] += weight
    return out.div_(norm.clamp_min_(1e-8))


def _frame_buffer(shape: tuple[int, ...], device: torch.device) -> Tensor:
    """A zeroed float32 HR buffer for stitching.

    Raises:
        OutOfMemoryError: it does not fit. Smaller tiles cannot help (the buffer is the whole
            HR clip), so this is not retried by the engine's tile back-off.
    """
    try:
        return torch.zeros(shape, device=device)
    except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
        msg = str(e)
        if not (isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in msg or "allocate" in msg):
            raise
        n = 4
        for d in shape:
            n *= d
        raise OutOfMemoryError(
            f"the stitched HR output of one clip ({'x'.join(map(str, shape))} float32, {n / 2**30:.1f} GiB) does not fit "
            f"in memory on {device}; smaller tiles cannot help: use a smaller --scale or --chunk") from e
