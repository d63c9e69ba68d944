"""TDAN: temporally-deformable alignment network, a 5-frame sliding-window VSR model.

Paper: Tian, Zhang, Fu and Xu, "TDAN: Temporally-Deformable Alignment Network for Video
Super-Resolution", CVPR 2020. Implementation and checkpoints followed here: mmagic
(open-mmlab/mmagic, ``mmagic/models/editors/tdan/tdan_net.py``, ``TDANNet``; configs
``configs/tdan/*``), Apache-2.0. This file is an independent reimplementation with the
official parameter names (mmagic's ``generator.`` prefix stripped by :func:`convert_official`).
mmcv's deformable convolution is ``torchvision.ops.deform_conv2d`` here (same offset layout:
per deformable group, ``(dy, dx)`` per kernel tap; zero outside the frame).

Stages (one method each):

- :meth:`TDAN.extract_features`: conv + ReLU and 5 residual blocks on every LR frame;
- :meth:`TDAN.align`: for each neighbour, offsets from ``[centre, neighbour]`` features
  (``feat_aggregate``: a conv and two deformable convs), an offset-guided deformable conv
  (``align_1``) and a plain deformable conv (``align_2``) on the neighbour's features, and
  ``to_rgb`` back to an aligned LR frame; the centre frame passes unchanged;
- :meth:`TDAN.reconstruct_frame`: the five aligned LR frames stacked on channels, conv + ReLU,
  10 residual blocks, two x2 pixel-shuffle upsamplers, a bias-free conv to RGB.

Value range: mmagic's data preprocessor feeds ``(x - 127.5) / 255`` for 8-bit ``x`` (mean 0.5,
std 1 in [0, 1] units) and adds it back; the record sets ``input_mean = 0.5``, so the network
sees RGB in [-0.5, 0.5] as in the official test.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import deform_conv2d

from upvid.errors import ModelInputError
from upvid.models.blocks import PixelShufflePack, ResidualBlockNoBN, make_layer


class ConvReLU(nn.Module):
    """mmcv's default ``ConvModule``: a biased 3x3 conv then ReLU (key ``conv``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, cin, H, W) -> (N, cout, H, W)``."""
        return torch.relu(self.conv(x))


class DeformConv(nn.Module):
    """mmcv's bias-free 3x3 ``DeformConv2d`` with its offset conv ``conv_offset``.

    The offsets (``2 * G * 9`` channels) come from the ``guide`` features when given
    (mmagic's ``AugmentedDeformConv2dPack``), else from the input itself (``DeformConv2dPack``).

    Args:
        channels: input and output channels.
        deform_groups: ``G``, offset groups over the input channels.
    """

    def __init__(self, channels: int, deform_groups: int = 8) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, channels, 3, 3))
        nn.init.uniform_(self.weight, -1 / (9 * channels) ** 0.5, 1 / (9 * channels) ** 0.5)
        self.conv_offset = nn.Conv2d(channels, deform_groups * 2 * 9, 3, padding=1, bias=True)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: Tensor, guide: Tensor | None = None) -> Tensor:
        """``(N, C, H, W)`` features (offsets from ``guide``, same shape, when given) -> ``(N, C, H, W)``."""
        offset = self.conv_offset(x if guide is None else guide).float()
        # fp32 under autocast: offsets are positions, and torchvision has no CPU bf16 kernel
        return deform_conv2d(x.float(), offset, self.weight.float(), padding=(1, 1))


class TDAN(nn.Module):
    """TDAN (x4 only, as the official network).

    Args:
        in_channels: LR image channels.
        mid_channels: feature channels.
        out_channels: HR image channels.
        num_blocks_before_align: residual blocks of the feature extractor.
        num_blocks_after_align: residual blocks of the reconstruction.
        num_frames: the sliding window (the official 5; :meth:`reconstruct_frame` stacks them).
        deform_groups: offset groups of every deformable conv (the official 8).
    """

    def __init__(self, in_channels: int = 3, mid_channels: int = 64, out_channels: int = 3,
                 num_blocks_before_align: int = 5, num_blocks_after_align: int = 10,
                 num_frames: int = 5, deform_groups: int = 8) -> None:
        super().__init__()
        c = mid_channels
        self.num_frames = num_frames
        self.in_channels = in_channels
        self.feat_extract = nn.Sequential(
            ConvReLU(in_channels, c), make_layer(ResidualBlockNoBN, num_blocks_before_align, num_feat=c))
        self.feat_aggregate = nn.Sequential(
            nn.Conv2d(2 * c, c, 3, padding=1, bias=True), DeformConv(c, deform_groups), DeformConv(c, deform_groups))
        self.align_1 = DeformConv(c, deform_groups)
        self.align_2 = DeformConv(c, deform_groups)
        self.to_rgb = nn.Conv2d(c, 3, 3, padding=1, bias=True)
        self.reconstruct = nn.Sequential(
            ConvReLU(in_channels * num_frames, c),
            make_layer(ResidualBlockNoBN, num_blocks_after_align, num_feat=c),
            PixelShufflePack(c, c, 2, upsample_kernel=3),
            PixelShufflePack(c, c, 2, upsample_kernel=3),
            nn.Conv2d(c, out_channels, 3, 1, 1, bias=False))

    def extract_features(self, lrs: Tensor) -> Tensor:
        """``(B, T, C_in, H, W)`` LR frames -> ``(B, T, mid, H, W)`` features."""
        b, t, c, h, w = lrs.shape
        return self.feat_extract(lrs.reshape(b * t, c, h, w)).unflatten(0, (b, t))

    def align(self, lrs: Tensor, feats: Tensor) -> Tensor:
        """Align every neighbour to the centre frame.

        Args:
            lrs: ``(B, T, 3, H, W)`` LR frames (the preprocessed range, [-0.5, 0.5]).
            feats: ``(B, T, mid, H, W)`` their features.

        Returns:
            ``(B, T, 3, H, W)``: the aligned LR frames, the centre one unchanged.
        """
        t = lrs.shape[1]
        centre = feats[:, t // 2]
        out = []
        for i in range(t):
            if i == t // 2:
                out.append(lrs[:, i])
                continue
            offset_feat = self.feat_aggregate(torch.cat([centre, feats[:, i]], dim=1))
            aligned = self.align_2(self.align_1(feats[:, i], offset_feat))
            out.append(self.to_rgb(aligned))
        return torch.stack(out, dim=1)

    def reconstruct_frame(self, aligned: Tensor) -> Tensor:
        """``(B, T, 3, H, W)`` aligned LR frames -> ``(B, 3, 4H, 4W)`` the HR centre frame."""
        return self.reconstruct(aligned.flatten(1, 2))

    def forward_with_aligned(self, lrs: Tensor) -> tuple[Tensor, Tensor]:
        """The official forward: ``(HR centre (B, 3, 4H, 4W), aligned LR frames (B, T, 3, H, W))``.

        Raises:
            ModelInputError: ``lrs`` is not ``(B, num_frames, in_channels, H, W)``.
        """
        if lrs.ndim != 5 or lrs.shape[1] != self.num_frames or lrs.shape[2] != self.in_channels:
            raise ModelInputError(f"TDAN: expected (B, {self.num_frames}, {self.in_channels}, H, W), "
                                  f"got {tuple(lrs.shape)}")
        aligned = self.align(lrs, self.extract_features(lrs))
        return self.reconstruct_frame(aligned), aligned

    def forward(self, lrs: Tensor) -> Tensor:
        """Upscale the centre frame of a window.

        Args:
            lrs: ``(B, T, 3, H, W)`` float RGB minus 0.5 (mmagic's preprocessing: [-0.5, 0.5]).

        Returns:
            ``(B, 3, 4H, 4W)``, the same range (not clamped).

        Raises:
            ModelInputError: wrong shape.
        """
        return self.forward_with_aligned(lrs)[0]


def convert_official(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """mmagic TDAN checkpoint -> ours: ``state_dict`` unwrapped by the loader, ``generator.`` stripped.

    Raises:
        ValueError: a key that is not part of TDANNet.
    """
    out = {k.removeprefix("generator."): v for k, v in state_dict.items()}
    roots = ("feat_extract.", "feat_aggregate.", "align_1.", "align_2.", "to_rgb.", "reconstruct.")
    bad = [k for k in out if not k.startswith(roots)]
    if bad:
        raise ValueError(f"not a TDAN checkpoint: unexpected keys {bad[:5]}")
    return out
