"""Bicubic interpolation: the offline, weight-free baseline (``torch.nn.functional.interpolate``)."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


class Bicubic(nn.Module):
    """Per-frame bicubic upscaling (a = -0.75, as PyTorch/OpenCV; no antialiasing needed upward).

    Args:
        scale: integer upscaling factor >= 1.
    """

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` in [0, 1] -> ``(B, C, scale*H, scale*W)`` (unclamped)."""
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
