"""EDSR: enhanced deep residual network for single-image super-resolution, applied per frame.

Paper: Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution",
CVPRW 2017 (NTIRE 2017 winner). Official code and checkpoints: sanghyun-son/EDSR-PyTorch,
https://github.com/sanghyun-son/EDSR-PyTorch (``src/model/edsr.py`` @ 3dd71ae and
``src/model/common.py``), MIT licence. This file is an independent reimplementation with the
official parameter names, so the published ``.pt`` files load with ``strict=True`` unchanged.

Network, in the official stage names:

- ``sub_mean``: a fixed 1x1 conv subtracting the DIV2K RGB mean times ``rgb_range``;
- ``head``: 3x3 conv, 3 -> ``n_feats``;
- ``body``: ``n_resblocks`` residual blocks ``x + res_scale * conv(relu(conv(x)))`` and a
  closing 3x3 conv, with a global skip from the head;
- ``tail``: the upsampler (one ``conv -> 4 n_feats`` + pixel shuffle per factor 2, or one
  ``conv -> 9 n_feats`` + shuffle for x3) and a 3x3 conv back to RGB;
- ``add_mean``: adds the mean back.

Baseline: 16 blocks, 64 features, ``res_scale = 1``; large (the paper's EDSR): 32 blocks, 256
features, ``res_scale = 0.1``. The network works in [0, 255] (the official ``--rgb_range 255``);
the record sets ``input_range = 255.0``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from upvid.errors import ModelInputError

#: The DIV2K RGB mean of the official MeanShift, in [0, 1].
DIV2K_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, bias=True)


class MeanShift(nn.Conv2d):
    """Fixed 1x1 conv adding ``sign * rgb_range * mean`` per channel (keys ``weight``, ``bias``)."""

    def __init__(self, rgb_range: float, sign: int) -> None:
        super().__init__(3, 3, kernel_size=1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(DIV2K_MEAN))
        for p in self.parameters():
            p.requires_grad_(False)


class ResBlock(nn.Module):
    """``x + res_scale * body(x)``, ``body = conv, ReLU, conv`` (official keys ``body.0``, ``body.2``)."""

    def __init__(self, n_feats: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(n_feats, n_feats), nn.ReLU(inplace=True), _conv(n_feats, n_feats))
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W) -> (N, C, H, W)``."""
        return x + self.body(x) * self.res_scale


def upsampler(scale: int, n_feats: int) -> nn.Sequential:
    """The official ``Upsampler``: ``log2(scale)`` (conv -> 4C, shuffle 2) stages, or one (conv -> 9C, shuffle 3).

    Raises:
        ValueError: ``scale`` is neither a power of two nor 3.
    """
    layers: list[nn.Module] = []
    if scale >= 1 and scale & (scale - 1) == 0:
        for _ in range(int(math.log2(scale))):
            layers += [_conv(n_feats, 4 * n_feats), nn.PixelShuffle(2)]
    elif scale == 3:
        layers += [_conv(n_feats, 9 * n_feats), nn.PixelShuffle(3)]
    else:
        raise ValueError(f"EDSR: scale {scale} is not supported (2^n or 3)")
    return nn.Sequential(*layers)


class EDSR(nn.Module):
    """EDSR (baseline or large), one frame in, one out.

    Args:
        scale: upscaling factor (2, 3 or 4 for the published checkpoints).
        n_resblocks: residual blocks (16 baseline, 32 large).
        n_feats: feature channels (64 baseline, 256 large).
        res_scale: residual scaling (1 baseline, 0.1 large).
        n_colors: image channels.
        rgb_range: the value range the network works in (the official 255).
    """

    def __init__(self, scale: int = 4, n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1.0,
                 n_colors: int = 3, rgb_range: float = 255.0) -> None:
        super().__init__()
        self.scale = scale
        self.n_colors = n_colors
        self.sub_mean = MeanShift(rgb_range, sign=-1)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(_conv(n_colors, n_feats))
        self.body = nn.Sequential(*[ResBlock(n_feats, res_scale) for _ in range(n_resblocks)], _conv(n_feats, n_feats))
        self.tail = nn.Sequential(upsampler(scale, n_feats), _conv(n_feats, n_colors))

    def forward(self, x: Tensor) -> Tensor:
        """Upscale one frame.

        Args:
            x: ``(B, 3, H, W)`` float RGB in [0, rgb_range] (the official [0, 255]).

        Returns:
            ``(B, 3, s*H, s*W)`` float RGB, about [0, rgb_range] (not clamped).

        Raises:
            ModelInputError: wrong rank or channel count.
        """
        if x.ndim != 4 or x.shape[1] != self.n_colors:
            raise ModelInputError(f"EDSR: expected (B, {self.n_colors}, H, W), got {tuple(x.shape)}")
        feat = self.head(self.sub_mean(x))
        return self.add_mean(self.tail(self.body(feat) + feat))


def convert_official(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """EDSR-PyTorch state dict -> ours: the names are the official ones; a ``module.`` prefix
    (a DataParallel save) is dropped.

    Raises:
        ValueError: a key outside EDSR's ``sub_mean``/``head``/``body``/``tail``/``add_mean``.
    """
    out = {k.removeprefix("module."): v for k, v in state_dict.items()}
    bad = [k for k in out if not k.startswith(("sub_mean.", "add_mean.", "head.", "body.", "tail."))]
    if bad:
        raise ValueError(f"not an EDSR checkpoint: unexpected keys {bad[:5]}")
    return out
