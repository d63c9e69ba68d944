"""RRDBNet: the ESRGAN / Real-ESRGAN generator (x4, and x2 through pixel-unshuffle).

Papers: Xintao Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial
Networks", ECCV Workshops 2018; Xintao Wang, Liangbin Xie, Chao Dong, Ying Shan,
"Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data", ICCVW 2021.
Official code: XPixelGroup/BasicSR ``basicsr/archs/rrdbnet_arch.py`` (Apache-2.0), used by
xinntao/Real-ESRGAN (BSD-3-Clause), whose releases publish RealESRGAN_x4plus.pth and
RealESRGAN_x2plus.pth. Clean reimplementation with the same parameter names and numerics.

Network, one method per stage: :meth:`RRDBNet.shallow` (x2: pixel-unshuffle by 2 first, so
the trunk runs at half resolution and the head's x4 gives x2), :meth:`RRDBNet.trunk` (23
residual-in-residual dense blocks, residual scaling 0.2, plus a conv, added to the shallow
features), :meth:`RRDBNet.upsample` (two nearest x2 + conv + LeakyReLU(0.2), then conv_hr and
conv_last). Per-frame: ``(B, 3, H, W) -> (B, 3, sH, sW)``, RGB in [0, 1], not clamped. For x2,
``H`` and ``W`` must be even (the registry's ``size_multiple = 2`` reflect-pads them at the
bottom/right as Real-ESRGAN's ``RealESRGANer.pre_process`` does).

Checkpoint conversion: none; the releases hold the state dict under ``params_ema`` with our keys.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from upvid.errors import ModelInputError
from upvid.models.blocks import make_layer

__all__ = ["RRDBNet", "ResidualDenseBlock", "RRDB"]


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; output ``x + 0.2 * conv5(...)``.

    Args:
        num_feat: channels in and out.
        num_grow_ch: channels added by each of the first four convs.
    """

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W) -> (N, C, H, W)``."""
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Three :class:`ResidualDenseBlock` in a row; output ``x + 0.2 * rdb3(rdb2(rdb1(x)))``."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W) -> (N, C, H, W)``."""
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN's generator (BasicSR parameter names).

    Args:
        num_in_ch, num_out_ch: image channels (3).
        scale: 4, 2 (pixel-unshuffle by 2 before the trunk) or 1 (by 4).
        num_feat: trunk channels (64).
        num_block: RRDB blocks (23).
        num_grow_ch: dense growth channels (32).

    Raises:
        ValueError: a scale other than 1, 2, 4.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet upscales by 1, 2 or 4, not {scale}")
        self.scale = scale
        self.unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = make_layer(RRDB, num_block, num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def shallow(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W)`` -> ``(B, C, H/u, W/u)`` features (``u``: the pixel-unshuffle factor)."""
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        return self.conv_first(x)

    def trunk(self, feat: Tensor) -> Tensor:
        """Deep features: ``feat + conv_body(RRDBs(feat))``, same shape."""
        return feat + self.conv_body(self.body(feat))

    def upsample(self, feat: Tensor) -> Tensor:
        """``(B, C, h, w)`` -> ``(B, 3, 4h, 4w)``: two nearest x2 + conv + LeakyReLU, conv_hr, conv_last."""
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))

    def forward(self, x: Tensor) -> Tensor:
        """Super-resolve one frame.

        Args:
            x: ``(B, 3, H, W)`` RGB in [0, 1]; ``H``, ``W`` multiples of the unshuffle factor.

        Returns:
            ``(B, 3, scale*H, scale*W)`` RGB, about [0, 1] (not clamped).

        Raises:
            ModelInputError: wrong rank, or a size the pixel-unshuffle cannot take.
        """
        if x.ndim != 4:
            raise ModelInputError(f"RRDBNet: expected (B, C, H, W), got {tuple(x.shape)}")
        if x.shape[-1] % self.unshuffle or x.shape[-2] % self.unshuffle:
            raise ModelInputError(f"RRDBNet x{self.scale}: H and W must be multiples of {self.unshuffle}, "
                                  f"got {x.shape[-2]}x{x.shape[-1]}")
        return self.upsample(self.trunk(self.shallow(x)))
