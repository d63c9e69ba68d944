"""EDVR: video restoration with enhanced deformable convolutions (sliding window, x4).

Paper: Xintao Wang, Kelvin C.K. Chan, Ke Yu, Chao Dong, Chen Change Loy, "EDVR: Video Restoration
with Enhanced Deformable Convolutional Networks", CVPR Workshops (NTIRE) 2019.
Official code and checkpoints: XPixelGroup/BasicSR (``basicsr/archs/edvr_arch.py``,
``arch_util.py``), Apache-2.0. This is a clean reimplementation with the same parameter names
and numerics.

Network: per-frame features (conv + residual blocks) at three pyramid levels (1, 1/2, 1/4);
every frame is aligned to the centre frame by PCD (pyramid, cascading, deformable) alignment
built from modulated deformable convolutions (DCNv2, ``torchvision.ops.deform_conv2d``); the
aligned frames are fused by TSA (temporal + spatial attention); residual blocks and two
pixel-shuffle x2 steps reconstruct the centre frame, added to its bilinear x4 upsampling.

The modulated deformable convolution follows BasicSR's ``DCNv2Pack``: a plain conv on the
*guiding* features predicts ``3 * G * k * k`` channels, of which the first ``2 * G * k * k`` are
the offsets (per group and kernel point, interleaved ``(dy, dx)``, the layout torchvision and
mmcv share) and the last ``G * k * k`` the mask logits (sigmoid). BasicSR's ``chunk(3)`` + ``cat``
of the first two thirds is exactly this split. BasicSR's warning when the mean offset exceeds 50
is not reproduced (it is a log line only).

Checkpoint conversion: none. BasicSR checkpoints (``EDVR_M_x4_SR_REDS_official-32075921.pth``,
``EDVR_L_x4_SR_REDS_official-9f5f5039.pth``; the state dict under ``params``) load as they are;
:func:`convert_official` only drops non-tensor entries.

The pieces are reused by IconVSR (:mod:`upvid.models.iconvsr`): :class:`EDVRFeatureExtractor`
is the network up to the fused features, :class:`~upvid.models.blocks.X4Head` the reconstruction head shared with
BasicVSR/IconVSR.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.ops import deform_conv2d

from upvid.errors import ModelInputError
from upvid.models.blocks import ResidualBlockNoBN, X4Head, make_layer

__all__ = [
    "EDVR",
    "DCNv2Pack",
    "EDVRFeatureExtractor",
    "PCDAlignment",
    "TSAFusion",
    "convert_official",
]


def _lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, negative_slope=0.1)


def _up2(x: Tensor) -> Tensor:
    """Bilinear x2 (``align_corners=False``), as BasicSR's ``nn.Upsample``."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class DCNv2Pack(nn.Module):
    """Modulated deformable 3x3 conv whose offsets and mask come from separate guiding features.

    Parameters (BasicSR names): ``weight`` ``(C_out, C_in, k, k)``, ``bias`` ``(C_out,)``, and
    ``conv_offset`` (a ``k x k`` conv ``C_in -> 3 * G * k * k``) predicting offsets and mask.

    Args:
        in_channels: ``C_in``; also the channels of the guiding features.
        out_channels: ``C_out``.
        kernel_size: ``k``.
        padding: spatial padding of both convs.
        deformable_groups: ``G``, offset groups over the input channels.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1, deformable_groups: int = 8
    ) -> None:
        super().__init__()
        self.padding = padding
        self.deformable_groups = deformable_groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        n_offset = deformable_groups * kernel_size * kernel_size
        self.conv_offset = nn.Conv2d(in_channels, 3 * n_offset, kernel_size, 1, padding, bias=True)
        bound = 1.0 / (in_channels * kernel_size * kernel_size) ** 0.5
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.zeros_(self.conv_offset.weight)  # start as a plain conv (zero offsets, mask 0.5)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: Tensor, guide: Tensor) -> Tensor:
        """Sample ``x`` at positions predicted from ``guide``.

        Args:
            x: ``(N, C_in, H, W)`` features to sample.
            guide: ``(N, C_in, H, W)`` features the offsets and mask are predicted from.

        Returns:
            ``(N, C_out, H, W)``.
        """
        om = self.conv_offset(guide).float()
        n_off = 2 * om.shape[1] // 3
        offset = om[:, :n_off]
        mask = torch.sigmoid(om[:, n_off:])
        p = self.padding
        # fp32 under autocast, as in BasicVSR++: offsets are positions (bf16 keeps 8 bits of them) and
        # torchvision has no bf16 deformable convolution on the CPU
        return deform_conv2d(x.float(), offset, self.weight.float(), self.bias.float(), padding=(p, p), mask=mask)


class PCDAlignment(nn.Module):
    """Pyramid, cascading and deformable alignment of a neighbour frame's features to the reference.

    Offsets are estimated coarse to fine (levels ``l3`` = 1/4, ``l2`` = 1/2, ``l1`` = full size),
    each level also seeing the x2-upsampled offsets (doubled) and aligned features of the coarser
    one; a final cascading deformable conv refines the full-size result.

    Args:
        num_feat: channels ``C``.
        deformable_groups: offset groups of the deformable convs.
    """

    def __init__(self, num_feat: int = 64, deformable_groups: int = 8) -> None:
        super().__init__()
        c = num_feat
        self.offset_conv1 = nn.ModuleDict()
        self.offset_conv2 = nn.ModuleDict()
        self.offset_conv3 = nn.ModuleDict()
        self.dcn_pack = nn.ModuleDict()
        self.feat_conv = nn.ModuleDict()
        for level in ("l3", "l2", "l1"):
            coarsest = level == "l3"
            self.offset_conv1[level] = nn.Conv2d(2 * c, c, 3, 1, 1)
            self.offset_conv2[level] = nn.Conv2d(c if coarsest else 2 * c, c, 3, 1, 1)
            if not coarsest:
                self.offset_conv3[level] = nn.Conv2d(c, c, 3, 1, 1)
                self.feat_conv[level] = nn.Conv2d(2 * c, c, 3, 1, 1)
            self.dcn_pack[level] = DCNv2Pack(c, c, 3, padding=1, deformable_groups=deformable_groups)
        self.cas_offset_conv1 = nn.Conv2d(2 * c, c, 3, 1, 1)
        self.cas_offset_conv2 = nn.Conv2d(c, c, 3, 1, 1)
        self.cas_dcnpack = DCNv2Pack(c, c, 3, padding=1, deformable_groups=deformable_groups)

    def forward(self, nbr: list[Tensor], ref: list[Tensor]) -> Tensor:
        """Align.

        Args:
            nbr: neighbour features ``[(N, C, H, W), (N, C, H/2, W/2), (N, C, H/4, W/4)]``.
            ref: reference features, same shapes.

        Returns:
            ``(N, C, H, W)`` aligned neighbour features.
        """
        up_offset: Tensor | None = None
        up_feat: Tensor | None = None
        feat = nbr[0]
        for i, level in ((2, "l3"), (1, "l2"), (0, "l1")):
            offset = _lrelu(self.offset_conv1[level](torch.cat([nbr[i], ref[i]], dim=1)))
            if up_offset is None:
                offset = _lrelu(self.offset_conv2[level](offset))
            else:
                offset = _lrelu(self.offset_conv2[level](torch.cat([offset, up_offset], dim=1)))
                offset = _lrelu(self.offset_conv3[level](offset))
            feat = self.dcn_pack[level](nbr[i], offset)
            if up_feat is not None:
                feat = self.feat_conv[level](torch.cat([feat, up_feat], dim=1))
            if i > 0:
                feat = _lrelu(feat)
                up_offset = _up2(offset) * 2  # offsets are in pixels of the finer level
                up_feat = _up2(feat)
        offset = _lrelu(self.cas_offset_conv1(torch.cat([feat, ref[0]], dim=1)))
        offset = _lrelu(self.cas_offset_conv2(offset))
        return _lrelu(self.cas_dcnpack(feat, offset))


class TSAFusion(nn.Module):
    """Temporal and spatial attention fusion of aligned frame features.

    Temporal: each frame is weighted per pixel by ``sigmoid(<emb(frame), emb(centre)>)``; the
    weighted frames are fused by a 1x1 conv. Spatial: a two-level pyramid attention map (max and
    average pooling) modulates the fused features, ``feat * 2 * sigmoid(attn) + attn_add``.

    Args:
        num_feat: channels ``C``.
        num_frame: frames ``T``.
        center_frame_idx: index of the reference frame.
    """

    def __init__(self, num_feat: int = 64, num_frame: int = 5, center_frame_idx: int = 2) -> None:
        super().__init__()
        c = num_feat
        self.center_frame_idx = center_frame_idx
        self.temporal_attn1 = nn.Conv2d(c, c, 3, 1, 1)
        self.temporal_attn2 = nn.Conv2d(c, c, 3, 1, 1)
        self.feat_fusion = nn.Conv2d(num_frame * c, c, 1, 1)
        self.spatial_attn1 = nn.Conv2d(num_frame * c, c, 1)
        self.spatial_attn2 = nn.Conv2d(2 * c, c, 1)
        self.spatial_attn3 = nn.Conv2d(c, c, 3, 1, 1)
        self.spatial_attn4 = nn.Conv2d(c, c, 1)
        self.spatial_attn5 = nn.Conv2d(c, c, 3, 1, 1)
        self.spatial_attn_l1 = nn.Conv2d(c, c, 1)
        self.spatial_attn_l2 = nn.Conv2d(2 * c, c, 3, 1, 1)
        self.spatial_attn_l3 = nn.Conv2d(c, c, 3, 1, 1)
        self.spatial_attn_add1 = nn.Conv2d(c, c, 1)
        self.spatial_attn_add2 = nn.Conv2d(c, c, 1)

    @staticmethod
    def _pool_pair(x: Tensor) -> Tensor:
        """Max and average 3x3/2 pooling (average counts the zero padding, as ``nn.AvgPool2d``)."""
        return torch.cat([F.max_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1, count_include_pad=True)], dim=1)

    def forward(self, aligned: Tensor) -> Tensor:
        """Fuse.

        Args:
            aligned: ``(B, T, C, H, W)`` aligned features (``H``, ``W`` multiples of 4).

        Returns:
            ``(B, C, H, W)`` fused features.
        """
        b, t, c, h, w = aligned.shape
        emb_ref = self.temporal_attn1(aligned[:, self.center_frame_idx])
        emb = self.temporal_attn2(aligned.reshape(b * t, c, h, w)).view(b, t, -1, h, w)
        prob = torch.sigmoid((emb * emb_ref.unsqueeze(1)).sum(dim=2, keepdim=True))  # (B, T, 1, H, W)
        weighted = (aligned * prob).reshape(b, t * c, h, w)

        feat = _lrelu(self.feat_fusion(weighted))

        attn = _lrelu(self.spatial_attn1(weighted))
        attn = _lrelu(self.spatial_attn2(self._pool_pair(attn)))
        level = _lrelu(self.spatial_attn_l1(attn))
        level = _lrelu(self.spatial_attn_l2(self._pool_pair(level)))
        level = _up2(_lrelu(self.spatial_attn_l3(level)))
        attn = _lrelu(self.spatial_attn3(attn)) + level
        attn = _up2(_lrelu(self.spatial_attn4(attn)))
        attn = self.spatial_attn5(attn)
        attn_add = self.spatial_attn_add2(_lrelu(self.spatial_attn_add1(attn)))
        return feat * torch.sigmoid(attn) * 2 + attn_add


class EDVRFeatureExtractor(nn.Module):
    """EDVR up to the fused centre-frame features: pyramid features, PCD alignment, fusion.

    Used alone by IconVSR (as ``edvr.*``); :class:`EDVR` adds reconstruction on top.

    Args:
        num_frame: frames ``T`` per window.
        num_feat: channels ``C``.
        deformable_groups: offset groups of the deformable convs.
        num_extract_block: residual blocks of the per-frame feature extractor.
        center_frame_idx: reference frame (default ``T // 2``).
        with_tsa: TSA fusion; ``False``: a single 1x1 conv over the concatenated frames.
    """

    def __init__(
        self,
        num_frame: int = 5,
        num_feat: int = 64,
        deformable_groups: int = 8,
        num_extract_block: int = 5,
        center_frame_idx: int | None = None,
        with_tsa: bool = True,
    ) -> None:
        super().__init__()
        self.num_frame = num_frame
        self.center_frame_idx = num_frame // 2 if center_frame_idx is None else center_frame_idx
        self.with_tsa = with_tsa
        c = num_feat
        self.conv_first = nn.Conv2d(3, c, 3, 1, 1)
        self.feature_extraction = make_layer(ResidualBlockNoBN, num_extract_block, num_feat=c)
        self.conv_l2_1 = nn.Conv2d(c, c, 3, 2, 1)
        self.conv_l2_2 = nn.Conv2d(c, c, 3, 1, 1)
        self.conv_l3_1 = nn.Conv2d(c, c, 3, 2, 1)
        self.conv_l3_2 = nn.Conv2d(c, c, 3, 1, 1)
        self.pcd_align = PCDAlignment(num_feat=c, deformable_groups=deformable_groups)
        self.fusion: nn.Module
        if with_tsa:
            self.fusion = TSAFusion(num_feat=c, num_frame=num_frame, center_frame_idx=self.center_frame_idx)
        else:
            self.fusion = nn.Conv2d(num_frame * c, c, 1, 1)

    def check_input(self, x: Tensor) -> None:
        """Raise :class:`ModelInputError` unless ``x`` is ``(B, T, 3, H, W)`` with ``H, W`` multiples of 4."""
        if x.ndim != 5 or x.shape[1] != self.num_frame or x.shape[2] != 3:
            raise ModelInputError(f"EDVR: expected (B, {self.num_frame}, 3, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % 4 or w % 4:
            raise ModelInputError(f"EDVR: height and width must be multiples of 4, got {h}x{w}")

    def forward(self, x: Tensor) -> Tensor:
        """Fused features of the centre frame.

        Args:
            x: ``(B, T, 3, H, W)`` RGB in [0, 1], ``H`` and ``W`` multiples of 4.

        Returns:
            ``(B, C, H, W)``.

        Raises:
            ModelInputError: wrong shape.
        """
        self.check_input(x)
        b, t, _, h, w = x.shape
        l1 = self.feature_extraction(_lrelu(self.conv_first(x.reshape(b * t, 3, h, w))))
        l2 = _lrelu(self.conv_l2_2(_lrelu(self.conv_l2_1(l1))))
        l3 = _lrelu(self.conv_l3_2(_lrelu(self.conv_l3_1(l2))))
        # All T frames are aligned to the centre in one batch of B*T.
        c = self.center_frame_idx
        nbr, ref = [], []
        for f in (l1, l2, l3):
            f5 = f.view(b, t, *f.shape[1:])
            nbr.append(f)
            ref.append(f5[:, c : c + 1].expand_as(f5).reshape(f.shape))
        aligned = self.pcd_align(nbr, ref).view(b, t, -1, h, w)
        if not self.with_tsa:
            aligned = aligned.reshape(b, -1, h, w)
        return self.fusion(aligned)


class EDVR(EDVRFeatureExtractor, X4Head):
    """EDVR x4 video super-resolution, centre frame of a sliding window.

    Configurations of the official checkpoints: EDVR-M ``num_feat=64, num_reconstruct_block=10``;
    EDVR-L ``num_feat=128, num_reconstruct_block=40``; both ``num_frame=5`` (REDS), 7 (Vimeo-90K).

    Args:
        num_feat: channels ``C``.
        num_frame: frames ``T`` per window.
        deformable_groups: offset groups of the deformable convs.
        num_extract_block: residual blocks before alignment.
        num_reconstruct_block: residual blocks after fusion.
        center_frame_idx: reference frame (default ``T // 2``).
        with_tsa: TSA fusion (all official SR checkpoints but ``woTSA`` use it).
    """

    def __init__(
        self,
        num_feat: int = 64,
        num_frame: int = 5,
        deformable_groups: int = 8,
        num_extract_block: int = 5,
        num_reconstruct_block: int = 10,
        center_frame_idx: int | None = None,
        with_tsa: bool = True,
    ) -> None:
        super().__init__(num_frame, num_feat, deformable_groups, num_extract_block, center_frame_idx, with_tsa)
        self.reconstruction = make_layer(ResidualBlockNoBN, num_reconstruct_block, num_feat=num_feat)
        self._build_head(num_feat)

    def forward(self, x: Tensor) -> Tensor:
        """Super-resolve the centre frame.

        Args:
            x: ``(B, T, 3, H, W)`` RGB in [0, 1], ``H`` and ``W`` multiples of 4.

        Returns:
            ``(B, 3, 4H, 4W)`` RGB, about [0, 1] (not clamped).

        Raises:
            ModelInputError: wrong shape.
        """
        feat = super().forward(x)
        return self._upsample(self.reconstruction(feat), x[:, self.center_frame_idx])


def convert_official(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """BasicSR EDVR state dict (already unwrapped from ``params``) -> ours: same keys.

    Args:
        state_dict: official keys and tensors.

    Returns:
        A new dict with the tensor entries, unchanged.
    """
    return {k: v for k, v in state_dict.items() if isinstance(v, Tensor)}
