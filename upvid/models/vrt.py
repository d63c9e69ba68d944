"""VRT: video restoration transformer (video SR x4), clip in, clip out.

Paper: Jingyun Liang, Jiezhang Cao, Yuchen Fan, Kai Zhang, Rakesh Ranjan, Yawei Li, Radu Timofte,
Luc Van Gool, "VRT: A Video Restoration Transformer", IEEE TIP 2024 (arXiv:2201.12288).
Official code: JingyunLiang/VRT (``models/network_vrt.py``, ``main_test_vrt.py``), CC-BY-NC 4.0;
the checkpoints (GitHub release ``v0.0``: ``001_VRT_videosr_bi_REDS_6frames.pth``,
``002_VRT_videosr_bi_REDS_16frames.pth``, ``003_VRT_videosr_bi_Vimeo_7frames.pth``,
``004_VRT_videosr_bd_Vimeo_7frames.pth``) are non-commercial as well. This is an independent
reimplementation in plain PyTorch with the official parameter names and numerics (parity
fixtures: ``tests/fixtures/vrt``); only the video SR variant (``pa_frames > 0``, ``upscale > 1``)
is built.

Stages (one method each):

1. :meth:`VRT.compute_flows`: SpyNet flows between neighbouring frames at four scales
   (full, 1/2, 1/4, 1/8), both directions, and for ``pa_frames`` 4/6 the flows to the 2nd/3rd
   neighbour composed from them (:meth:`VRT._compose_flows`);
2. :meth:`VRT.warp_input`: each frame concatenated with its two neighbours warped onto it
   (``nearest4``: the four nearest integer positions, 4 x 3 channels each) -> ``conv_first``;
3. :meth:`VRT.extract_features`: a U-shaped stack of seven :class:`Stage` s at scales
   1, 1/2, 1/4, 1/8, 1/4, 1/2, 1 (patch merging ``down`` / ``up`` between them). A stage is
   temporal mutual self-attention (:class:`TMSAG`: windows of 2 frames, where each frame's tokens
   attend to the other frame's, "mutual", and to the window, "self"; ``mul_attn_ratio`` of the
   layers), then self-attention only over ``window_size`` windows, then parallel warping
   (:meth:`Stage.align`: the features of the ``pa_frames / 2`` neighbours on each side, flow-warped
   and refined by a flow-guided modulated deformable conv, fused by a GEGLU MLP). Every other
   layer shifts the windows by half a window (also in time: clips talk to each other). Then
   ``stage8``: residual self-attention groups at full scale (the last two frame-independent:
   window depth 1);
4. :meth:`VRT.upsample_frames`: conv, 2 x (conv, pixel shuffle x2, LeakyReLU), conv, conv_last,
   added to the trilinearly (here: bilinearly per frame) upsampled LR clip.

Size rules (typed :class:`~upvid.errors.ModelInputError`): ``H`` and ``W`` multiples of 8 (three
patch mergings), at least ``8 * window`` (mutual attention adds a position encoding of a full
spatial window, so the 1/8-scale map must hold one); one-frame clips are doubled (mutual
attention pairs frames) and the extra output dropped.

Checkpoint conversion (:func:`convert_official`): keys are the official ones; the ``params``
wrapper is unwrapped, the ``relative_position_index`` and ``position_bias`` buffers (constants
rebuilt here) are dropped, SpyNet's ``mean``/``std`` added when absent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.ops import deform_conv2d

from upvid.errors import ModelInputError
from upvid.models.flow import SpyNet, add_spynet_buffers, flow_warp
from upvid.models.swin import effective_window, group_shift_mask, relative_position_index, window_attention

__all__ = ["VRT", "convert_official"]


def sine_position_encoding(h: int, w: int, num_pos_feats: int, temperature: float = 10000.0) -> Tensor:
    """DETR-style normalised 2-D sine encoding of an ``h x w`` window: ``(1, h*w, 2*num_pos_feats)`` float32.

    Rows and columns are numbered 1..h / 1..w, scaled to (0, 2 pi]; channels are the row
    encoding then the column one, each ``sin, cos`` interleaved over ``temperature`` frequencies.
    """
    y = torch.arange(1, h + 1, dtype=torch.float32).view(h, 1).expand(h, w)
    x = torch.arange(1, w + 1, dtype=torch.float32).view(1, w).expand(h, w)
    y = y / (h + 1e-6) * 2 * math.pi
    x = x / (w + 1e-6) * 2 * math.pi
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_pos_feats)

    def enc(p: Tensor) -> Tensor:
        p = p[..., None] / dim_t
        return torch.stack((p[..., 0::2].sin(), p[..., 1::2].cos()), dim=3).flatten(2)

    return torch.cat((enc(y), enc(x)), dim=2).reshape(1, h * w, 2 * num_pos_feats)


class MlpGEGLU(nn.Module):
    """``fc2(gelu(fc11(x)) * fc12(x))`` on ``(..., in)`` tokens (keys ``fc11``, ``fc12``, ``fc2``)."""

    def __init__(self, in_features: int, hidden: int, out_features: int | None = None) -> None:
        super().__init__()
        self.fc11 = nn.Linear(in_features, hidden)
        self.fc12 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features or in_features)

    def forward(self, x: Tensor) -> Tensor:
        """``(..., in) -> (..., out)``."""
        return self.fc2(F.gelu(self.fc11(x)) * self.fc12(x))


class WindowAttention(nn.Module):
    """Self-attention with a relative position bias, plus (``mut_attn``) mutual attention between the
    two frames of a 2-frame window, with a sine position encoding.

    Args:
        dim: channels ``C``.
        window_size: configured ``(Wd, Wh, Ww)``.
        num_heads: heads.
        mut_attn: add mutual attention (then ``proj`` maps ``2C -> C``).
    """

    def __init__(self, dim: int, window_size: Sequence[int], num_heads: int, mut_attn: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.mut_attn = mut_attn
        wd, wh, ww = window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1), num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.qkv_self = nn.Linear(dim, dim * 3)
        if mut_attn:
            self.register_buffer("position_bias", sine_position_encoding(wh, ww, dim // 2), persistent=False)
            self.qkv_mut = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(2 * dim if mut_attn else dim, dim)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None) -> Tensor:
        """``(B, nW, h, n, d)`` q, k, v -> ``(B, nW, n, h*d)``; ``mask (nW, >=n, >=n)``, ``bias (h, n, n)``."""
        b, nw, h, n, d = q.shape
        add = None
        if bias is not None:
            add = bias.unsqueeze(0).unsqueeze(0)  # (1, 1, h, n, n)
        if mask is not None:
            m = mask[:, :n, :n].to(q.dtype).view(1, nw, 1, n, n)
            add = m if add is None else add + m
        if add is not None:
            add = add.expand(b, nw, h, n, n).reshape(b * nw, h, n, n)
        out = F.scaled_dot_product_attention(q.reshape(b * nw, h, n, d), k.reshape(b * nw, h, n, d),
                                             v.reshape(b * nw, h, n, d), attn_mask=add, scale=self.scale)
        return out.view(b, nw, h, n, d).transpose(2, 3).reshape(b, nw, n, h * d)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """``(B, nW, N, C)`` window tokens (``mask``: ``(nW, N, N)`` additive, shifted layers) -> ``(B, nW, N, C)``."""
        b, nw, n, c = x.shape
        h = self.num_heads
        q, k, v = self.qkv_self(x).view(b, nw, n, 3, h, c // h).permute(3, 0, 1, 4, 2, 5).unbind(0)
        idx = self.relative_position_index[:n, :n].reshape(-1)  # the reference slices a shrunk window's index
        bias = self.relative_position_bias_table[idx].view(n, n, h).permute(2, 0, 1).to(q.dtype)
        out = self._attend(q, k, v, mask, bias)
        if self.mut_attn:
            pos = self.position_bias.to(x.dtype).repeat(1, 2, 1)  # (1, N, C): the same encoding for both frames
            qkv = self.qkv_mut(x + pos).view(b, nw, n, 3, h, c // h).permute(3, 0, 1, 4, 2, 5)
            (q1, q2), (k1, k2), (v1, v2) = (t.chunk(2, dim=3) for t in qkv.unbind(0))
            x1 = self._attend(q2, k1, v1, mask, None)  # frame 2 queries frame 1: frame 1 aligned to 2
            x2 = self._attend(q1, k2, v2, mask, None)
            out = torch.cat([torch.cat([x1, x2], dim=2), out], dim=3)
        return self.proj(out)


class TMSA(nn.Module):
    """One temporal mutual self-attention layer: pre-norm window attention + pre-norm GEGLU, residual.

    Args:
        dim: channels.
        num_heads: heads.
        window_size: configured ``(Wd, Wh, Ww)``.
        shift_size: cyclic shift (0 for even layers).
        mut_attn: mutual + self attention (windows of 2 frames) instead of self only.
        mlp_ratio: GEGLU hidden size / ``dim``.
    """

    def __init__(self, dim: int, num_heads: int, window_size: Sequence[int], shift_size: Sequence[int],
                 mut_attn: bool, mlp_ratio: float) -> None:
        super().__init__()
        self.window_size, self.shift_size = tuple(window_size), tuple(shift_size)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, mut_attn)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MlpGEGLU(dim, int(dim * mlp_ratio))

    def _attend(self, x: Tensor, mask: Tensor | None) -> Tensor:
        win, shift = effective_window(x.shape[1:4], self.window_size, self.shift_size)
        return window_attention(self.norm1(x), win, shift, self.attn, mask)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """``(B, D, H, W, C) -> (B, D, H, W, C)``."""
        x = x + self._attend(x, mask)
        return x + self.mlp(self.norm2(x))


class TMSAG(nn.Module):
    """A group of :class:`TMSA` layers, every other one shifted by half a window (keys ``blocks.{i}``).

    Args:
        dim: channels.
        depth: layers.
        num_heads: heads.
        window_size: ``(Wd, Wh, Ww)``.
        mut_attn: mutual + self attention.
        mlp_ratio: GEGLU hidden size / ``dim``.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: Sequence[int], mut_attn: bool,
                 mlp_ratio: float) -> None:
        super().__init__()
        self.window_size = tuple(window_size)
        self.shift_size = tuple(w // 2 for w in window_size)
        self.blocks = nn.ModuleList([
            TMSA(dim, num_heads, window_size, (0, 0, 0) if i % 2 == 0 else self.shift_size, mut_attn, mlp_ratio)
            for i in range(depth)])

    def forward(self, x: Tensor) -> Tensor:
        """``(B, D, H, W, C) -> (B, D, H, W, C)`` (channels last)."""
        size = x.shape[1:4]
        win, shift = effective_window(size, self.window_size, self.shift_size)
        mask = group_shift_mask(size, win, shift, x.device)
        for blk in self.blocks:
            x = blk(x, mask)
        return x


class RTMSA(nn.Module):
    """``x + linear(TMSAG(x))``, self attention only (stage 8; keys ``residual_group``, ``linear``)."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: Sequence[int], mlp_ratio: float) -> None:
        super().__init__()
        self.residual_group = TMSAG(dim, depth, num_heads, window_size, False, mlp_ratio)
        self.linear = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, D, H, W, C) -> (B, D, H, W, C)``."""
        return x + self.linear(self.residual_group(x))


class DCNv2PackFlowGuided(nn.Module):
    """Flow-guided modulated deformable conv of parallel warping (keys ``weight``, ``bias``, ``conv_offset.{0,2,4,6}``).

    The offsets are the flows to each neighbour plus a residue ``max_residue_magnitude * tanh(.)``
    predicted from the flow-warped neighbours, the current frame's features and the flows. With
    ``pa_frames / 2 = k`` neighbours the input has ``k * C`` channels and the conv is grouped ``k``
    ways (the reference passes a ``C``-input weight to ``deform_conv2d``).

    Args:
        channels: ``C``.
        deformable_groups: offset groups.
        max_residue_magnitude: bound of the learnt residue (pixels of this scale).
        pa_frames: 2, 4 or 6.
    """

    def __init__(self, channels: int, deformable_groups: int, max_residue_magnitude: float, pa_frames: int) -> None:
        super().__init__()
        self.max_residue_magnitude = max_residue_magnitude
        self.pa_frames = pa_frames
        self.weight = nn.Parameter(torch.empty(channels, channels, 3, 3))
        nn.init.uniform_(self.weight, -1 / (9 * channels) ** 0.5, 1 / (9 * channels) ** 0.5)
        self.bias = nn.Parameter(torch.zeros(channels))
        k = pa_frames // 2
        self.conv_offset = nn.Sequential(
            nn.Conv2d((1 + k) * channels + pa_frames, channels, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(channels, 3 * 9 * deformable_groups, 3, 1, 1))
        nn.init.zeros_(self.conv_offset[-1].weight)
        nn.init.zeros_(self.conv_offset[-1].bias)

    def forward(self, x: Tensor, warped: list[Tensor], current: Tensor, flows: list[Tensor]) -> Tensor:
        """Align ``k`` neighbours to the current frame.

        Args:
            x: ``(N, k*C, H, W)`` the neighbours' features, nearest first.
            warped: ``k`` tensors ``(N, C, H, W)``, the neighbours flow-warped onto the current frame.
            current: ``(N, C, H, W)`` the current frame's features.
            flows: ``k`` flows ``(N, 2, H, W)`` (``dx, dy``), current -> neighbour.

        Returns:
            ``(N, C, H, W)``.
        """
        out = self.conv_offset(torch.cat(warped + [current] + flows, dim=1)).float()
        o1, o2, mask = torch.chunk(out, 3, dim=1)
        offset = self.max_residue_magnitude * torch.tanh(torch.cat((o1, o2), dim=1))
        parts = torch.chunk(offset, len(flows), dim=1)
        offset = torch.cat([p + f.float().flip(1).repeat(1, p.size(1) // 2, 1, 1) for p, f in zip(parts, flows)], dim=1)
        # fp32 under autocast: offsets are positions, and torchvision has no CPU bf16 kernel
        return deform_conv2d(x.float(), offset, self.weight.float(), self.bias.float(), padding=(1, 1),
                             mask=torch.sigmoid(mask)).to(x.dtype)


class _Transpose12(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2)


def _merge_down(x: Tensor) -> Tensor:
    """``(N, C, D, 2h, 2w) -> (N, D, h, w, 4C)``, channels ordered (col offset, row offset, C) as the reference."""
    n, c, d, hh, ww = x.shape
    x = x.view(n, c, d, hh // 2, 2, ww // 2, 2)
    return x.permute(0, 2, 3, 5, 6, 4, 1).reshape(n, d, hh // 2, ww // 2, 4 * c)


def _split_up(x: Tensor) -> Tensor:
    """``(N, 4C, D, h, w) -> (N, D, 2h, 2w, C)``, the inverse channel order of :func:`_merge_down`."""
    n, c4, d, h, w = x.shape
    x = x.view(n, 2, 2, c4 // 4, d, h, w)
    return x.permute(0, 4, 5, 2, 6, 1, 3).reshape(n, d, 2 * h, 2 * w, c4 // 4)


class Stage(nn.Module):
    """One scale of VRT: patch merging (``reshape``), mutual+self then self attention, parallel warping.

    Args:
        in_dim: channels coming in.
        dim: channels of this stage.
        depth: attention layers (``int(depth * mul_attn_ratio)`` with mutual attention).
        num_heads: heads.
        window_size: ``(Wd, Wh, Ww)`` of the self-attention group (the mutual one uses ``(2, Wh, Ww)``).
        mul_attn_ratio: share of mutual-attention layers.
        mlp_ratio: GEGLU hidden size / ``dim``.
        pa_frames: frames of parallel warping (2, 4, 6).
        deformable_groups: offset groups of the deformable conv.
        reshape: ``"none"``, ``"down"`` (x1/2) or ``"up"`` (x2).
        max_residue_magnitude: bound of the learnt offset residue.
    """

    def __init__(self, in_dim: int, dim: int, depth: int, num_heads: int, window_size: Sequence[int],
                 mul_attn_ratio: float, mlp_ratio: float, pa_frames: int, deformable_groups: int, reshape: str,
                 max_residue_magnitude: float) -> None:
        super().__init__()
        self.pa_frames = pa_frames
        self.mode = reshape
        width = {"none": dim, "down": 4 * in_dim, "up": in_dim // 4}[reshape]
        layers: list[nn.Module] = [nn.Identity(), nn.LayerNorm(width)]  # keys reshape.1 (and .2), as the reference
        if reshape != "none":
            layers.append(nn.Linear(width, dim))
        self.reshape = nn.Sequential(*layers)
        n_mut = int(depth * mul_attn_ratio)
        self.residual_group1 = TMSAG(dim, n_mut, num_heads, (2, window_size[1], window_size[2]), True, mlp_ratio)
        self.linear1 = nn.Linear(dim, dim)
        self.residual_group2 = TMSAG(dim, depth - n_mut, num_heads, window_size, False, mlp_ratio)
        self.linear2 = nn.Linear(dim, dim)
        self.pa_deform = DCNv2PackFlowGuided(dim, deformable_groups, max_residue_magnitude, pa_frames)
        self.pa_fuse = MlpGEGLU(dim * 3, dim * 3, dim)

    def forward(self, x: Tensor, flows_backward: list[Tensor], flows_forward: list[Tensor]) -> Tensor:
        """``(N, C_in, D, H, W)`` -> ``(N, C, D, H', W')`` (``H' = H/2`` for down, ``2H`` for up).

        ``flows_*``: ``pa_frames / 2`` flows ``(N, D-j, 2, H', W')`` to the ``j``-th neighbour.
        """
        if self.mode == "down":
            x = _merge_down(x)
        elif self.mode == "up":
            x = _split_up(x)
        else:
            x = x.permute(0, 2, 3, 4, 1)
        for layer in list(self.reshape)[1:]:
            x = layer(x)  # (N, D, H, W, C): channels last from here on
        x = self.linear1(self.residual_group1(x)) + x
        x = self.linear2(self.residual_group2(x)) + x
        x = x.permute(0, 1, 4, 2, 3)  # (N, D, C, H, W)
        backward, forward = self.align(x, flows_backward, flows_forward)
        x = self.pa_fuse(torch.cat([x, backward, forward], 2).permute(0, 1, 3, 4, 2))
        return x.permute(0, 4, 1, 2, 3)

    def align(self, x: Tensor, flows_backward: list[Tensor], flows_forward: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Parallel warping: for every frame the features of its ``k = pa_frames / 2`` later (backward)
        and earlier (forward) neighbours aligned onto it; zeros where a neighbour is outside the clip.

        Args:
            x: ``(N, D, C, H, W)``.
            flows_backward, flows_forward: ``k`` flows each, ``flows_backward[j][:, i]`` from frame
                ``i`` to ``i+j+1``, ``flows_forward[j][:, i]`` from frame ``i+j+1`` to ``i``.

        Returns:
            ``(backward, forward)``, each ``(N, D, C, H, W)``.
        """
        n = x.size(1)
        k = self.pa_frames // 2
        zero, zflow = torch.zeros_like(x[:, 0]), torch.zeros_like(x[:, 0, :2])
        backward: list[Tensor] = []
        forward: list[Tensor] = []
        for i in range(n):
            for out, sign, flows in ((backward, 1, flows_backward), (forward, -1, flows_forward)):
                if not 0 <= i + sign < n:  # the first neighbour is outside: the reference leaves zeros
                    out.append(zero)
                    continue
                feats, warped, used = [], [], []
                for j in range(k):
                    nb = i + sign * (j + 1)
                    if 0 <= nb < n:
                        flow = flows[j][:, i if sign > 0 else nb]
                        feat = x[:, nb]
                    else:
                        flow, feat = zflow, zero
                    feats.append(feat)
                    used.append(flow)
                    warped.append(flow_warp(feat, flow.permute(0, 2, 3, 1)))
                out.append(self.pa_deform(torch.cat(feats, 1), warped, x[:, i], used))
        return torch.stack(backward, 1), torch.stack(forward, 1)


class VRT(nn.Module):
    """VRT for video SR (the official ``VRT(upscale=4, pa_frames>0)``).

    Args:
        upscale: SR factor (4 for the published checkpoints; 2^n or 3).
        window_size: ``(Wd, Wh, Ww)`` attention window (``[6, 8, 8]`` or ``[8, 8, 8]``).
        depths: 13 group depths: stages 1-7, then the stage-8 groups.
        indep_reconsts: stage-8 groups (by index into ``depths``) with window depth 1.
        embed_dims: channels per group (as ``depths``).
        num_heads: heads per group.
        mul_attn_ratio: share of mutual-attention layers in stages 1-7.
        mlp_ratio: GEGLU hidden size / dim.
        pa_frames: neighbours of parallel warping (2, 4 or 6).
        deformable_groups: offset groups of parallel warping.
        in_chans, out_chans: image channels.
    """

    def __init__(self, upscale: int = 4, window_size: Sequence[int] = (6, 8, 8),
                 depths: Sequence[int] = (8, 8, 8, 8, 8, 8, 8, 4, 4, 4, 4, 4, 4), indep_reconsts: Sequence[int] = (11, 12),
                 embed_dims: Sequence[int] = (120,) * 7 + (180,) * 6, num_heads: Sequence[int] = (6,) * 13,
                 mul_attn_ratio: float = 0.75, mlp_ratio: float = 2.0, pa_frames: int = 2, deformable_groups: int = 16,
                 in_chans: int = 3, out_chans: int = 3) -> None:
        super().__init__()
        if pa_frames not in (2, 4, 6) or upscale < 2:
            raise ValueError("upvid builds VRT's video SR variant only (pa_frames 2/4/6, upscale >= 2)")
        self.upscale, self.pa_frames, self.in_chans = upscale, pa_frames, in_chans
        self.window_size = tuple(window_size)
        self.conv_first = nn.Conv3d(in_chans * (1 + 2 * 4), embed_dims[0], kernel_size=(1, 3, 3), padding=(0, 1, 1))
        self.spynet = SpyNet()
        reshapes = ("none", "down", "down", "down", "up", "up", "up")
        scales = (1, 2, 4, 8, 4, 2, 1)
        for i in range(7):
            setattr(self, f"stage{i + 1}", Stage(
                embed_dims[i - 1], embed_dims[i], depths[i], num_heads[i], window_size, mul_attn_ratio, mlp_ratio,
                pa_frames, deformable_groups, reshapes[i], 10 / scales[i]))
        head = nn.Sequential(nn.Identity(), nn.LayerNorm(embed_dims[6]), nn.Linear(embed_dims[6], embed_dims[7]))
        self.stage8 = nn.ModuleList([head] + [
            RTMSA(embed_dims[i], depths[i], num_heads[i],
                  (1, window_size[1], window_size[2]) if i in indep_reconsts else window_size, mlp_ratio)
            for i in range(7, len(depths))])
        self.norm = nn.LayerNorm(embed_dims[-1])
        self.conv_after_body = nn.Linear(embed_dims[-1], embed_dims[0])
        num_feat = 64
        self.conv_before_upsample = nn.Sequential(
            nn.Conv3d(embed_dims[0], num_feat, kernel_size=(1, 3, 3), padding=(0, 1, 1)), nn.LeakyReLU(inplace=True))
        self.upsample = _upsample(upscale, num_feat)
        self.conv_last = nn.Conv3d(num_feat, out_chans, kernel_size=(1, 3, 3), padding=(0, 1, 1))

    # -- stage 1: optical flow -----------------------------------------------------------------
    def compute_flows(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Flows at 4 scales for 1..``pa_frames/2`` frame distances.

        Args:
            x: ``(B, T, 3, H, W)`` RGB in [0, 1].

        Returns:
            ``(backward, forward)``: lists of ``4 * pa_frames/2`` flows, distance-major then
            scale: entry ``4j + s`` is ``(B, T-1-j, 2, H/2^s, W/2^s)`` for distance ``j+1``.
        """
        b, t, c, h, w = x.shape
        earlier = x[:, :-1].reshape(-1, c, h, w)
        later = x[:, 1:].reshape(-1, c, h, w)

        def shaped(flows: list[Tensor]) -> list[Tensor]:
            return [f.view(b, t - 1, 2, h // 2 ** i, w // 2 ** i) for i, f in enumerate(flows)]

        backward = shaped(self.spynet.pyramid(earlier, later, 4))
        forward = shaped(self.spynet.pyramid(later, earlier, 4))
        if self.pa_frames == 2:
            return backward, forward
        b2, f2 = self._compose_flows(backward, forward, backward, forward, 2)
        if self.pa_frames == 4:
            return backward + b2, forward + f2
        b3, f3 = self._compose_flows(b2, f2, backward, forward, 3)
        return backward + b2 + b3, forward + f2 + f3

    @staticmethod
    def _compose_flows(bw_far: list[Tensor], fw_far: list[Tensor], bw1: list[Tensor], fw1: list[Tensor],
                       distance: int) -> tuple[list[Tensor], list[Tensor]]:
        """Flows to the ``distance``-th neighbour: the flow to the ``distance-1``-th plus the one-step
        flow from there, warped along it (the reference's ``get_flow_4frames``/``get_flow_6frames``)."""
        bw, fw = [], []
        for far, one in zip(bw_far, bw1):
            steps = []
            for i in range(far.shape[1] - 1):  # the last far flow has no one-step flow beyond it
                n1 = far[:, i]  # frame i -> i + distance - 1
                n2 = one[:, i + distance - 1]  # one frame further
                steps.append(n1 + flow_warp(n2, n1.permute(0, 2, 3, 1)))
            bw.append(torch.stack(steps, 1))
        for far, one in zip(fw_far, fw1):
            steps = []
            for i in range(1, far.shape[1]):
                n1 = far[:, i]  # onto frame i + distance - 1, from distance - 1 frames back
                n2 = one[:, i - 1]  # one frame further back
                steps.append(n1 + flow_warp(n2, n1.permute(0, 2, 3, 1)))
            fw.append(torch.stack(steps, 1))
        return bw, fw

    # -- stage 2: warped input -----------------------------------------------------------------
    @staticmethod
    def _nearest4(x: Tensor, flow: Tensor) -> Tensor:
        """``(N, C, H, W)`` sampled at the 4 integer neighbours of each flow target -> ``(N, 4C, H, W)``."""
        _, _, h, w = x.shape
        gy, gx = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=x.device),
                                torch.arange(w, dtype=torch.float32, device=x.device), indexing="ij")
        vx, vy = gx + flow[:, 0].float(), gy + flow[:, 1].float()
        fx = [2.0 * torch.floor(vx) / max(w - 1, 1) - 1.0, 2.0 * torch.ceil(vx) / max(w - 1, 1) - 1.0]
        fy = [2.0 * torch.floor(vy) / max(h - 1, 1) - 1.0, 2.0 * torch.ceil(vy) / max(h - 1, 1) - 1.0]
        outs = [F.grid_sample(x.float(), torch.stack((fx[i], fy[j]), dim=3), mode="nearest", padding_mode="zeros",
                              align_corners=True) for i, j in ((0, 0), (0, 1), (1, 0), (1, 1))]
        return torch.cat(outs, 1).to(x.dtype)

    def warp_input(self, x: Tensor, flows_backward: Tensor, flows_forward: Tensor) -> Tensor:
        """``(B, T, 3, H, W)`` -> ``(B, T, 27, H, W)``: each frame, its next frame and its previous frame
        warped onto it (``nearest4``, zeros at the clip's ends); flows ``(B, T-1, 2, H, W)``."""
        t = x.shape[1]
        zero = torch.zeros_like(x[:, 0]).repeat(1, 4, 1, 1)
        nxt = [self._nearest4(x[:, i + 1], flows_backward[:, i]) for i in range(t - 1)] + [zero]
        prv = [zero] + [self._nearest4(x[:, i], flows_forward[:, i]) for i in range(t - 1)]
        return torch.cat([x, torch.stack(nxt, 1), torch.stack(prv, 1)], 2)

    # -- stage 3: features ---------------------------------------------------------------------
    def extract_features(self, x: Tensor, flows_backward: list[Tensor], flows_forward: list[Tensor]) -> Tensor:
        """``(B, C0, T, H, W)`` shallow features -> ``(B, C_last, T, H, W)``, the U-shaped stages and stage 8."""
        x1 = self.stage1(x, flows_backward[0::4], flows_forward[0::4])
        x2 = self.stage2(x1, flows_backward[1::4], flows_forward[1::4])
        x3 = self.stage3(x2, flows_backward[2::4], flows_forward[2::4])
        x4 = self.stage4(x3, flows_backward[3::4], flows_forward[3::4])
        x = self.stage5(x4, flows_backward[2::4], flows_forward[2::4])
        x = self.stage6(x + x3, flows_backward[1::4], flows_forward[1::4])
        x = self.stage7(x + x2, flows_backward[0::4], flows_forward[0::4])
        x = (x + x1).permute(0, 2, 3, 4, 1)  # channels last for stage 8
        head = self.stage8[0]
        x = head[2](head[1](x))
        for layer in self.stage8[1:]:
            x = layer(x)
        return self.norm(x).permute(0, 4, 1, 2, 3)

    # -- stage 4: reconstruction ---------------------------------------------------------------
    def upsample_frames(self, feat: Tensor, lq: Tensor) -> Tensor:
        """``(B, C0, T, H, W)`` features + ``(B, T, 3, H, W)`` LR clip -> ``(B, T, 3, sH, sW)``."""
        x = self.conv_last(self.upsample(self.conv_before_upsample(feat))).transpose(1, 2)
        _, _, c, hh, ww = x.shape
        return x + F.interpolate(lq, size=(c, hh, ww), mode="trilinear", align_corners=False)

    def check_input(self, x: Tensor) -> None:
        """Raise :class:`ModelInputError` unless ``x`` is ``(B, T, 3, H, W)``, ``H, W`` multiples of 8
        and at least 8 windows (``8 * Wh`` x ``8 * Ww``)."""
        if x.ndim != 5 or x.shape[2] != self.in_chans:
            raise ModelInputError(f"VRT: expected (B, T, {self.in_chans}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % 8 or w % 8:
            raise ModelInputError(f"VRT: height and width must be multiples of 8, got {h}x{w}")
        if h < 8 * self.window_size[1] or w < 8 * self.window_size[2]:
            raise ModelInputError(f"VRT: frames (or tiles) must be at least {8 * self.window_size[1]}x"
                                  f"{8 * self.window_size[2]} px (a full attention window at 1/8 scale), got {h}x{w}")

    def forward(self, x: Tensor) -> Tensor:
        """Upscale a clip.

        Args:
            x: ``(B, T, 3, H, W)`` RGB in [0, 1]; ``H, W`` multiples of 8, at least ``8 * window``.

        Returns:
            ``(B, T, 3, s*H, s*W)`` (not clamped).

        Raises:
            ModelInputError: wrong shape (see :meth:`check_input`).
        """
        self.check_input(x)
        t = x.shape[1]
        if t == 1:  # mutual attention pairs frames: a lone frame is paired with itself
            x = x.repeat(1, 2, 1, 1, 1)
        flows_backward, flows_forward = self.compute_flows(x)
        warped = self.warp_input(x, flows_backward[0], flows_forward[0])
        feat = self.conv_first(warped.transpose(1, 2))
        feat = feat + self.conv_after_body(
            self.extract_features(feat, flows_backward, flows_forward).permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        return self.upsample_frames(feat, x)[:, :t]


def _upsample(scale: int, num_feat: int) -> nn.Sequential:
    """The reference ``Upsample``: per factor 2 (or one 3), Conv3d(1x3x3) -> pixel shuffle -> LeakyReLU(0.1); a closing conv.

    Raises:
        ValueError: ``scale`` is neither 2^n nor 3.
    """
    layers: list[nn.Module] = []
    if scale & (scale - 1) == 0:
        factors = [2] * int(math.log2(scale))
    elif scale == 3:
        factors = [3]
    else:
        raise ValueError(f"VRT: scale {scale} is not supported (2^n or 3)")
    for f in factors:
        layers += [nn.Conv3d(num_feat, f * f * num_feat, kernel_size=(1, 3, 3), padding=(0, 1, 1)), _Transpose12(),
                   nn.PixelShuffle(f), _Transpose12(), nn.LeakyReLU(negative_slope=0.1, inplace=True)]
    layers.append(nn.Conv3d(num_feat, num_feat, kernel_size=(1, 3, 3), padding=(0, 1, 1)))
    return nn.Sequential(*layers)


def convert_official(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official VRT state dict (bare or in ``{'params': ...}``) -> ours (see the module docstring).

    Raises:
        ValueError: a key outside VRT's video SR network.
    """
    if isinstance(state_dict.get("params"), dict):
        state_dict = state_dict["params"]
    out = {k: v for k, v in state_dict.items()
           if isinstance(v, Tensor) and not k.endswith(("relative_position_index", "position_bias"))}
    roots = ("conv_first.", "spynet.", "stage", "norm.", "conv_after_body.", "conv_before_upsample.", "upsample.",
             "conv_last.")
    bad = [k for k in out if not k.startswith(roots)]
    if bad:
        raise ValueError(f"not a VRT video SR checkpoint: unexpected keys {bad[:5]}")
    return add_spynet_buffers(out)
