"""The ``upvid explain`` figure: the LR frame strip with the attribution heat map, the patch marked.

One panel per LR input frame (zoomed by the model's scale, nearest neighbour), the heat map
blended over it with LAM's colouring (``seismic`` on ``0.5 + 0.5 * heat``: white where unused,
red where used), the explained patch outlined in green on its frame; a last panel shows the
model's HR output of the crop with the patch outlined. Panels are separated by 4 px of grey.
"""

from __future__ import annotations

import numpy as np

GREEN = np.array([0, 220, 0], np.uint8)
GAP = 4


def seismic_upper(heat: np.ndarray) -> np.ndarray:
    """``(H, W)`` heat in [0, 1] -> ``(H, W, 3)`` uint8: matplotlib's ``seismic`` colormap on
    ``0.5 + 0.5 * heat`` (white, through red, to dark red), as LAM's ``vis_saliency``."""
    v = np.clip(heat, 0.0, 1.0)[..., None]
    white_to_red = np.concatenate([np.ones_like(v), 1 - 2 * v, 1 - 2 * v], axis=-1)
    red_to_dark = np.concatenate([1 - (v - 0.5), np.zeros_like(v), np.zeros_like(v)], axis=-1)
    rgb = np.where(v < 0.5, white_to_red, red_to_dark)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def _outline(img: np.ndarray, x: int, y: int, w: int, h: int, width: int = 2) -> None:
    """Draw a ``w x h`` rectangle at ``(x, y)`` in place (clipped to the image)."""
    hh, ww = img.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, ww), min(y + h, hh)
    if x1 <= x0 or y1 <= y0:
        return
    img[y0:min(y0 + width, y1), x0:x1] = GREEN
    img[max(y1 - width, y0):y1, x0:x1] = GREEN
    img[y0:y1, x0:min(x0 + width, x1)] = GREEN
    img[y0:y1, max(x1 - width, x0):x1] = GREEN


def render(lr: np.ndarray, heat: np.ndarray, sr: np.ndarray, target: int, patch: tuple[int, int, int],
           scale: int, alpha: float = 0.5) -> np.ndarray:
    """Compose the figure.

    Args:
        lr: ``(T, h, w, 3)`` uint8 LR frames (the analysed crop).
        heat: ``(T, h, w)`` float attribution map in [0, 1].
        sr: ``(s*h, s*w, 3)`` uint8 HR output of the explained frame.
        target: index of the explained frame in ``lr``.
        patch: ``(x, y, size)`` of the HR patch (px of ``sr``).
        scale: the model's scale (the panels' zoom).
        alpha: heat map opacity.

    Returns:
        ``(s*h, (T+1)*s*w + T*GAP, 3)`` uint8 RGB.
    """
    t, h, w = heat.shape
    panels = []
    x, y, size = patch
    for i in range(t):
        base = lr[i].repeat(scale, 0).repeat(scale, 1).astype(np.float32)
        colour = seismic_upper(heat[i]).repeat(scale, 0).repeat(scale, 1).astype(np.float32)
        panel = ((1 - alpha) * base + alpha * colour).round().astype(np.uint8)
        if i == target:
            _outline(panel, x, y, size, size)
        panels.append(panel)
    out = sr.copy()
    _outline(out, x, y, size, size)
    panels.append(out)
    gap = np.full((h * scale, GAP, 3), 128, np.uint8)
    strip = [panels[0]]
    for p in panels[1:]:
        strip += [gap, p]
    return np.concatenate(strip, axis=1)
