"""AnimeSR (MSRSWVSR): multi-scale, unidirectional recurrent, sliding-window VSR for animation.

Paper: Yanze Wu, Xintao Wang, Gen Li, Ying Shan, "AnimeSR: Learning Real-World Super-Resolution
Models for Animation Videos", NeurIPS 2022. Official code: TencentARC/AnimeSR
(``animesr/archs/vsr_arch.py``, Apache-2.0); checkpoints ``AnimeSR_v2.pth`` (recommended) and
``AnimeSR_v1-PaperModel.pth`` in the authors' Google Drive folder. Clean reimplementation with
the same parameter names and numerics.

Network: one recurrent cell per frame, fed the (previous, current, next) LR frames, the previous
HR output (pixel-unshuffled back to LR size) and the previous hidden state. The cell
(:class:`MultiScaleCell`) runs residual blocks at 1x, 1/2 and 1/4 resolution, right-aligned (the
coarser scales join the last blocks of the finer ones), fuses them, and splits the result into
the HR residual (pixel shuffle x4, added to the bilinear x4 of the current frame) and the next
state. At the clip ends the missing neighbour is the current frame itself.

Size rule: H and W multiples of 4 (two stride-2 convs); upvid reflect-pads (the official scripts
mod-crop, dropping up to 3 edge pixels). Checkpoints are plain state dicts with our keys.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from upvid.errors import ModelInputError
from upvid.models.blocks import ResidualBlockNoBN

__all__ = ["MSRSWVSR", "MultiScaleCell"]


def _lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.1)


def _up(x: Tensor, factor: int) -> Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class MultiScaleCell(nn.Module):
    """The recurrent cell: residual blocks at three scales, right-aligned, then a fusion.

    Parameter names as the official ``RightAlignMSConvResidualBlocks``: ``conv_s{1,2,4}_first.0``,
    ``body_s{1,2,4}_first.{i}.conv1/conv2``, ``fusion.0``/``fusion.2``.

    Args:
        num_in_ch: input channels.
        num_state_ch: channels at every scale.
        num_out_ch: output channels.
        num_block: blocks at 1x, 1/2, 1/4 (non-increasing).

    Raises:
        ValueError: ``num_block`` not three non-increasing counts.
    """

    def __init__(self, num_in_ch: int, num_state_ch: int, num_out_ch: int, num_block=(5, 3, 2)) -> None:
        super().__init__()
        if len(num_block) != 3 or not num_block[0] >= num_block[1] >= num_block[2]:
            raise ValueError(f"num_block must be three non-increasing counts, got {num_block}")
        self.num_block = tuple(num_block)
        c = num_state_ch
        self.conv_s1_first = nn.Sequential(nn.Conv2d(num_in_ch, c, 3, 1, 1), nn.LeakyReLU(0.1))
        self.conv_s2_first = nn.Sequential(nn.Conv2d(c, c, 3, 2, 1), nn.LeakyReLU(0.1))
        self.conv_s4_first = nn.Sequential(nn.Conv2d(c, c, 3, 2, 1), nn.LeakyReLU(0.1))
        self.body_s1_first = nn.ModuleList(ResidualBlockNoBN(num_feat=c) for _ in range(num_block[0]))
        self.body_s2_first = nn.ModuleList(ResidualBlockNoBN(num_feat=c) for _ in range(num_block[1]))
        self.body_s4_first = nn.ModuleList(ResidualBlockNoBN(num_feat=c) for _ in range(num_block[2]))
        self.fusion = nn.Sequential(nn.Conv2d(3 * c, 2 * num_out_ch, 3, 1, 1), nn.LeakyReLU(0.1),
                                    nn.Conv2d(2 * num_out_ch, num_out_ch, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """``(B, num_in_ch, H, W)`` -> ``(B, num_out_ch, H, W)``; ``H``, ``W`` multiples of 4."""
        s1 = self.conv_s1_first(x)
        s2 = self.conv_s2_first(s1)
        s4 = self.conv_s4_first(s2)
        n1, n2, n4 = self.num_block
        for i in range(n1):
            k2, k4 = i - (n1 - n2), i - (n1 - n4)  # the coarser scales start later, ending together
            inflow = s1
            if k2 > 0:  # s2 has been through a block (the official flags): it joins the 1x path
                inflow = inflow + _up(s2, 2)
            if k4 > 0:
                inflow = inflow + _up(s4, 4)
            s1_next = self.body_s1_first[i](inflow)
            if k2 >= 0:
                s2 = self.body_s2_first[k2](s2 + _up(s4, 2) if k4 > 0 else s2)
            if k4 >= 0:
                s4 = self.body_s4_first[k4](s4)
            s1 = s1_next
        return self.fusion(torch.cat((s1, _up(s2, 2), _up(s4, 4)), dim=1))


class MSRSWVSR(nn.Module):
    """AnimeSR's network, x4 (``netscale``).

    Args:
        num_feat: hidden state channels (64).
        num_block: cell blocks at 1x, 1/2, 1/4 (5, 3, 2).
        netscale: upscaling factor (the released models: 4).
    """

    def __init__(self, num_feat: int = 64, num_block=(5, 3, 2), netscale: int = 4) -> None:
        super().__init__()
        self.num_feat = num_feat
        self.netscale = netscale
        hr = 3 * netscale * netscale
        self.recurrent_cell = MultiScaleCell(3 * 3 + hr + num_feat, num_feat, num_feat + hr, num_block)

    def step(self, window: Tensor, prev_out: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One frame: ``window`` ``(B, 9, H, W)`` (previous, current, next), the previous HR
        output ``(B, 3, sH, sW)`` and state ``(B, C, H, W)`` -> (HR output, next state)."""
        s = self.netscale
        out = self.recurrent_cell(torch.cat((window, F.pixel_unshuffle(prev_out, s), state), dim=1))
        img = F.pixel_shuffle(out[:, : 3 * s * s], s) + _up(window[:, 3:6], s)
        return img, _lrelu(out[:, 3 * s * s:])

    def forward(self, x: Tensor) -> Tensor:
        """Super-resolve a clip, frame by frame, forward in time.

        Args:
            x: ``(B, T, 3, H, W)`` RGB in [0, 1], ``T >= 1``; ``H``, ``W`` multiples of 4.

        Returns:
            ``(B, T, 3, sH, sW)`` RGB, about [0, 1] (not clamped).

        Raises:
            ModelInputError: wrong shape or size.
        """
        if x.ndim != 5 or x.shape[2] != 3:
            raise ModelInputError(f"AnimeSR: expected (B, T, 3, H, W), got {tuple(x.shape)}")
        b, t, c, h, w = x.shape
        if h % 4 or w % 4:
            raise ModelInputError(f"AnimeSR: H and W must be multiples of 4, got {h}x{w}")
        s = self.netscale
        out = x.new_zeros(b, c, h * s, w * s)
        state = x.new_zeros(b, self.num_feat, h, w)
        outputs = []
        for i in range(t):
            prev, nxt = x[:, max(i - 1, 0)], x[:, min(i + 1, t - 1)]
            out, state = self.step(torch.cat((prev, x[:, i], nxt), dim=1), out, state)
            outputs.append(out)
        return torch.stack(outputs, dim=1)
