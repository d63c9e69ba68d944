"""3-D (shifted) window helpers shared by the Swin-style video transformers (IART, PSRT, RVRT).

Video Swin Transformer (Liu et al., CVPR 2022; SwinTransformer/Video-Swin-Transformer) cuts a
``(B, D, H, W, C)`` token map into non-overlapping ``(wd, wh, ww)`` windows; every other layer
cyclically shifts the map so windows straddle the previous layer's borders, and masks attention
between tokens that came from different regions of the map (the reference's ``compute_mask``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

#: The references' (finite) additive mask value between tokens of different shift regions.
MASK_VALUE = -100.0


def effective_window(size: Sequence[int], window: Sequence[int], shift: Sequence[int]) -> tuple[tuple, tuple]:
    """The window and shift actually used on a ``(D, H, W)`` map (the references' ``get_window_size``):
    an axis no longer than its window gets the axis size as window and no shift."""
    win = tuple(min(s, w) for s, w in zip(size, window))
    sh = tuple(0 if s <= w else k for s, w, k in zip(size, window, shift))
    return win, sh


def window_partition(x: Tensor, window: Sequence[int]) -> Tensor:
    """``(B, D, H, W, C)`` (each a multiple of ``window``) -> ``(B * nW, wd * wh * ww, C)``, windows in (D, H, W) order."""
    b, d, h, w, c = x.shape
    wd, wh, ww = window
    x = x.view(b, d // wd, wd, h // wh, wh, w // ww, ww, c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, wd * wh * ww, c)


def window_reverse(x: Tensor, window: Sequence[int], b: int, d: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: ``(B * nW, N, C)`` -> ``(B, D, H, W, C)``."""
    wd, wh, ww = window
    x = x.reshape(b, d // wd, h // wh, w // ww, wd, wh, ww, -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, w, -1)


def relative_position_index(window: Sequence[int]) -> Tensor:
    """``(N, N)`` int64 index into the ``(2wd-1)(2wh-1)(2ww-1)``-row relative position bias table, ``N = wd*wh*ww``."""
    wd, wh, ww = window
    coords = torch.stack(torch.meshgrid(torch.arange(wd), torch.arange(wh), torch.arange(ww), indexing="ij"))
    coords = coords.flatten(1)  # (3, N)
    rel = coords[:, :, None] - coords[:, None, :]  # (3, N, N)
    rel = rel + torch.tensor([wd - 1, wh - 1, ww - 1]).view(3, 1, 1)
    return rel[0] * (2 * wh - 1) * (2 * ww - 1) + rel[1] * (2 * ww - 1) + rel[2]


def shift_region_labels(size: Sequence[int], window: Sequence[int], shift: Sequence[int],
                        device: torch.device | str = "cpu") -> Tensor:
    """Region label of every token of every window of the cyclically shifted padded map.

    Along each axis of padded length ``P`` the reference labels three bands with Python slices
    ``[:-w]``, ``[-w:-s]`` and ``[-s:]``; an axis with shift 0 is one band (``[-0:]`` is all of it).
    A token's label combines its three axis bands; two tokens of a window may attend to each
    other freely only when their labels match.

    Args:
        size: the padded ``(D, H, W)``.
        window, shift: ``(wd, wh, ww)`` and ``(sd, sh, sw)``.

    Returns:
        ``(nW, N)`` int64 labels (``nW`` windows of one batch item, ``N`` tokens per window).
    """
    axes = []
    for length, w, s in zip(size, window, shift):
        lab = torch.zeros(length, dtype=torch.long)
        for k, band in enumerate((slice(-w), slice(-w, -s), slice(-s, None))):
            lab[band] = k
        axes.append(lab)
    grid = axes[0].view(-1, 1, 1) * 9 + axes[1].view(1, -1, 1) * 3 + axes[2].view(1, 1, -1)
    return window_partition(grid[None, ..., None], window).squeeze(-1).to(device)


def shift_mask(labels: Tensor, value: float = MASK_VALUE) -> Tensor:
    """``(nW, N)`` labels (:func:`shift_region_labels`) -> ``(nW, N, N)`` float32 additive attention
    mask: ``value`` between tokens of different regions, 0 elsewhere."""
    return torch.where(labels[:, None, :] != labels[:, :, None], value, 0.0).to(torch.float32)


def group_shift_mask(size: Sequence[int], window: Sequence[int], shift: Sequence[int],
                     device: torch.device | str = "cpu") -> Tensor | None:
    """The ``(nW, N, N)`` mask of the shifted layers of a group over a ``(D, H, W)`` map (padded up
    to whole windows), or ``None`` when the effective shift is 0 on every axis."""
    if not any(s > 0 for s in shift):
        return None
    padded = [math.ceil(s / w) * w for s, w in zip(size, window)]
    return shift_mask(shift_region_labels(padded, window, shift, device))


def window_attention(x: Tensor, window: Sequence[int], shift: Sequence[int],
                     attend: Callable[[Tensor, Tensor | None], Tensor], mask: Tensor | None) -> Tensor:
    """(Shifted-)window attention over a normalised ``(B, D, H, W, C)`` map, as the references' layers.

    The map is zero-padded to whole windows (after the norm, as the references), cyclically
    shifted by ``-shift`` when any shift is non-zero, cut into windows, passed to
    ``attend((B, nW, N, C) tokens, mask or None)``, put back, shifted back and cropped.

    Returns:
        ``(B, D, H, W, C)``.
    """
    b, d, h, w, c = x.shape
    pd, ph, pw = (-d) % window[0], (-h) % window[1], (-w) % window[2]
    if pd or ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph, 0, pd))
    shifted = any(s > 0 for s in shift)
    if shifted:
        x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
    n = window[0] * window[1] * window[2]
    windows = window_partition(x, window).view(b, -1, n, c)
    y = window_reverse(attend(windows, mask if shifted else None).flatten(0, 1), window, b, d + pd, h + ph, w + pw)
    if shifted:
        y = torch.roll(y, shifts=tuple(shift), dims=(1, 2, 3))
    return y[:, :d, :h, :w]
