"""RVRT: recurrent video restoration transformer with guided deformable attention (video SR x4).

Paper: Jingyun Liang, Yuchen Fan, Xiaoyu Xiang, Rakesh Ranjan, Eddy Ilg, Simon Green, Jiezhang Cao,
Kai Zhang, Radu Timofte, Luc Van Gool, "Recurrent Video Restoration Transformer with Guided
Deformable Attention", NeurIPS 2022 (arXiv:2206.02146).
Official code: JingyunLiang/RVRT (``models/network_rvrt.py``, ``models/op/deform_attn*``),
CC-BY-NC 4.0 (parts from KAIR: MIT; BasicSR, Video Swin Transformer, MMEditing: Apache-2.0).
The checkpoints (GitHub release ``v0.0``: ``001_RVRT_videosr_bi_REDS_30frames.pth``,
``002_RVRT_videosr_bi_Vimeo_14frames.pth``, ``003_RVRT_videosr_bd_Vimeo_14frames.pth``) are
CC-BY-NC 4.0 as well: non-commercial use only.

This is a clean reimplementation in plain PyTorch with the same numerics. The official guided
deformable attention is a custom CUDA extension; here it is :func:`guided_deformable_attention`,
built on ``F.grid_sample`` (same bilinear sampling, zeros outside the frame) and
``F.scaled_dot_product_attention``, so the network runs unchanged on CPU and CUDA.

Network, for a clip of ``T`` LR frames cut into 2-frame sub-clips:

1. shallow features: per-frame conv + Swin transformer block (``feat_extract``);
2. SpyNet flows between neighbouring frames, both directions;
3. four recurrent passes over the sub-clips, ``backward_1``, ``forward_1``, ``backward_2``,
   ``forward_2``. At sub-clip ``i`` of a pass, the feature of sub-clip ``i-1`` (``feat_prop``, two
   frames) is aligned to the two current frames by :class:`GuidedDeformableAttention`: each
   current frame queries ``2 x 9`` positions in each previous frame, the 3x3 neighbourhood of the
   flow-warped position plus learnt offsets (``max_residue_magnitude * tanh``), separately for
   each of 12 offset groups, and attends over the ``18`` sampled keys per head. Offsets are
   predicted from the current frames' features and ``feat_prop`` pre-warped by the (composed)
   optical flows; the first pass of each direction also returns the mean offsets as refined
   flows, which the second pass reuses. A transformer trunk (``backbone.<pass>``: grouped
   conv over the concatenated features of all earlier passes + window attention over
   ``2 x 8 x 8`` windows) then updates ``feat_prop`` residually;
4. reconstruction: the five features of each frame -> conv + Swin block -> conv -> 2 x
   (conv, pixel shuffle x2, LeakyReLU) -> conv -> conv_last, added to the bilinear x4 LR frame.

Guided deformable attention (the CUDA op ``deform_attn``), for one query frame:
``kv = [proj_k(k), proj_v(v)]`` has ``2P`` channels (``P = 2 C``) split into ``G`` deformable
groups of ``2P / G`` channels (so keys and values of one head use different offsets); offsets are
``(dy, dx)`` pairs per group and kernel point (the DCN layout); kernel point ``(i, j)`` of output
pixel ``(y, x)`` reads ``(y - 1 + i + dy, x - 1 + j + dx)`` bilinearly, zero outside. Query
``proj_q(q)`` (``P`` channels, ``heads`` heads) attends with scale ``(P / heads) ** -0.5``.
Sample set ``s`` of query frame ``j`` reads previous-clip frame ``(j + s) % 2`` with the
``s``-th half of the offsets.

Differences from the reference that do not change the numbers:

- Odd clip lengths are padded by repeating the last frame (the official test script's temporal
  padding) and the extra output dropped; the reference network needs an even ``T``.
- Convs with a depth-1 3-D kernel are 2-D convs on ``(B*T, C, H, W)``; the converter squeezes
  their weights. Window attention and the feed-forwards run channels-last.
- Reconstruction runs per sub-clip inside the last pass, and features no longer needed are
  freed. The official ``cpu_cache`` (features parked in host memory for clips over 100 frames)
  is not reproduced: upvid streams bounded clips. The mirror-extended-input shortcut is not
  reproduced either (it only skips a SpyNet pass).
- Deformable sampling runs in row bands to bound memory, with grids in fp32.

Checkpoint conversion (:func:`convert_official`): the official ``.pth`` is the state dict, bare or
wrapped in ``{'params': ...}`` (the official loader accepts both; so does the converter). Keys map
one to one except:
``<stage>.main.1`` -> ``<stage>.conv_in``, ``main.3`` -> ``norm_in``,
``main.5.{i}.residual_group.blocks.{j}`` -> ``blocks.{i}.layers.{j}``,
``main.5.{i}.linear`` -> ``blocks.{i}.linear``, ``main.7`` -> ``norm_out`` (for ``feat_extract``,
``backbone.<pass>``, ``reconstruction``); ``deform_align.<pass>.{proj_q,proj_k,proj_v,proj}.1``
-> without ``.1``, ``mlp.1`` -> ``mlp``; ``conv_before_upsampler.0`` -> ``conv_before_upsampler``;
``upsampler.{0,5,10}`` -> ``upsampler.convs.{0,1}``, ``upsampler.conv_out``. 5-D conv weights
(depth-1 kernels) are squeezed to 4-D; the ``relative_position_index`` buffers (constants) are
dropped; SpyNet keys are BasicSR's, its ``mean``/``std`` buffers are added when absent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from upvid.errors import ModelInputError
from upvid.models.blocks import PASSES, Mlp
from upvid.models.flow import SpyNet, add_spynet_buffers, compute_flows, flow_warp
from upvid.models.swin import effective_window, group_shift_mask, relative_position_index, window_attention

__all__ = [
    "RVRT",
    "GuidedDeformableAttention",
    "RSTBWithInputConv",
    "convert_official",
    "guided_deformable_attention",
]

#: The recurrent passes, in the order they run (and the order their features are concatenated).

#: Budget (elements) of one band of deformably sampled keys/values.
_SAMPLE_BUDGET = 1 << 25


class WindowAttention(nn.Module):
    """Multi-head self-attention inside 3-D windows, with a learnt relative position bias.

    Args:
        dim: channels ``C``.
        window_size: configured window ``(Wd, Wh, Ww)`` (the bias table's size).
        num_heads: heads.
    """

    def __init__(self, dim: int, window_size: Sequence[int], num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        wd, wh, ww = window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1), num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.qkv_self = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """Attend within each window.

        Args:
            x: ``(B, nW, N, C)`` window tokens.
            mask: ``(nW, N, N)`` additive shifted-window mask (0 / -100), or None.

        Returns:
            ``(B, nW, N, C)``.
        """
        b, nw, n, c = x.shape
        h = self.num_heads
        q, k, v = self.qkv_self(x).view(b, nw, n, 3, h, c // h).permute(3, 0, 1, 4, 2, 5).unbind(0)
        # the reference slices the full window's index when the window shrinks to a small input
        idx = self.relative_position_index[:n, :n].reshape(-1)
        bias = self.relative_position_bias_table[idx].view(n, n, h).permute(2, 0, 1).to(q.dtype)  # (h, N, N)
        if mask is None:
            out = F.scaled_dot_product_attention(
                q.reshape(b * nw, h, n, -1), k.reshape(b * nw, h, n, -1), v.reshape(b * nw, h, n, -1),
                attn_mask=bias.unsqueeze(0), scale=self.scale)
        else:
            full = (bias.unsqueeze(0) + mask.to(q.dtype).unsqueeze(1)).reshape(nw * h, n, n)
            out = F.scaled_dot_product_attention(
                q.reshape(b, nw * h, n, -1), k.reshape(b, nw * h, n, -1), v.reshape(b, nw * h, n, -1),
                attn_mask=full, scale=self.scale)
        out = out.view(b, nw, h, n, -1).transpose(2, 3).reshape(b, nw, n, c)
        return self.proj(out)


class SwinLayer(nn.Module):
    """Pre-norm (shifted-)window attention + pre-norm MLP, both residual (channels-last).

    Args:
        dim: channels.
        num_heads: attention heads.
        window_size: configured window ``(Wd, Wh, Ww)``.
        shifted: shift the windows by half a window (odd layers).
        mlp_ratio: MLP hidden size / ``dim``.
    """

    def __init__(self, dim: int, num_heads: int, window_size: Sequence[int], shifted: bool, mlp_ratio: float) -> None:
        super().__init__()
        self.window_size = tuple(window_size)
        self.shift_size = tuple(w // 2 for w in window_size) if shifted else (0, 0, 0)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def _attend(self, x: Tensor, mask: Tensor | None) -> Tensor:
        win, shift = effective_window(x.shape[1:4], self.window_size, self.shift_size)
        return window_attention(self.norm1(x), win, shift, self.attn, mask)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """``(B, D, H, W, C) -> (B, D, H, W, C)``; ``mask`` from :func:`~upvid.models.swin.shift_mask` for shifted layers."""
        x = x + self._attend(x, mask)
        return x + self.mlp(self.norm2(x))


class RSTB(nn.Module):
    """Residual Swin transformer block: ``x + linear(layers(x))`` (channels-last).

    Args:
        dim: channels.
        depth: Swin layers (alternately regular and shifted windows).
        num_heads: attention heads.
        window_size: window ``(Wd, Wh, Ww)``.
        mlp_ratio: MLP hidden size / ``dim``.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: Sequence[int], mlp_ratio: float) -> None:
        super().__init__()
        self.window_size = tuple(window_size)
        self.layers = nn.ModuleList(
            [SwinLayer(dim, num_heads, window_size, i % 2 == 1, mlp_ratio) for i in range(depth)])
        self.linear = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, D, H, W, C) -> (B, D, H, W, C)``."""
        size = x.shape[1:4]
        win, shift = effective_window(size, self.window_size, tuple(w // 2 for w in self.window_size))
        mask = group_shift_mask(size, win, shift, x.device)
        y = x
        for layer in self.layers:
            y = layer(y, mask)
        return x + self.linear(y)


class RSTBWithInputConv(nn.Module):
    """Per-frame 3x3 conv + LayerNorm, residual Swin blocks, LayerNorm.

    Args:
        in_channels: input channels.
        dim: output channels ``C``.
        num_blocks: :class:`RSTB` blocks.
        depth: Swin layers per block.
        num_heads: attention heads.
        window_size: window ``(Wd, Wh, Ww)`` (``Wd``: frames).
        groups: groups of the input conv.
        mlp_ratio: MLP hidden size / ``dim``.
    """

    def __init__(self, in_channels: int, dim: int, num_blocks: int, depth: int, num_heads: int,
                 window_size: Sequence[int], groups: int = 1, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, dim, 3, 1, 1, groups=groups)
        self.norm_in = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(
            [RSTB(dim, depth, num_heads, window_size, mlp_ratio) for _ in range(num_blocks)])
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, in_channels, H, W) -> (B, T, C, H, W)``."""
        b, t = x.shape[:2]
        y = self.conv_in(x.flatten(0, 1))
        y = self.norm_in(y.unflatten(0, (b, t)).permute(0, 1, 3, 4, 2))
        for block in self.blocks:
            y = block(y)
        return self.norm_out(y).permute(0, 1, 4, 2, 3)


def guided_deformable_attention(
    q: Tensor, kv: Tensor, offsets: Sequence[Tensor], heads: int, groups: int, kernel: Sequence[int] = (3, 3)
) -> Tensor:
    """RVRT's deformable attention (the official ``deform_attn`` CUDA op), in PyTorch.

    Each query pixel attends, per head, over ``S * K`` keys: for each of the ``S`` sample sets,
    the ``K = kh * kw`` kernel points around it, displaced by per-group offsets and read
    bilinearly from that set's source frame (zero outside the frame).

    Args:
        q: ``(N, P, H, W)`` queries (``P = heads * d``), unscaled.
        kv: ``(S, N, 2P, H, W)``: for each sample set the source frame, keys in channels
            ``[0, P)``, values in ``[P, 2P)``; ``2P`` channels are split into ``groups``
            deformable groups.
        offsets: ``S`` tensors ``(N, groups * K * 2, H, W)``, ``(dy, dx)`` in pixels for each
            group and kernel point (group-major, the DCN layout).
        heads: attention heads.
        groups: deformable groups.
        kernel: ``(kh, kw)`` sampling window (padding ``kh // 2``, as the reference).

    Returns:
        ``(N, P, H, W)`` attended values, dtype of ``q``.
    """
    n, p, h, w = q.shape
    s_sets = kv.shape[0]
    kh, kw = kernel
    k_pts = kh * kw
    pad = kh // 2
    cg = 2 * p // groups
    d = p // heads
    dev = q.device
    ky, kx = torch.meshgrid(torch.arange(kh, device=dev, dtype=torch.float32),
                            torch.arange(kw, device=dev, dtype=torch.float32), indexing="ij")
    ky, kx = ky.reshape(k_pts, 1, 1) - pad, kx.reshape(k_pts, 1, 1) - pad
    per_row = n * s_sets * 2 * p * k_pts * w
    band = max(1, min(h, _SAMPLE_BUDGET // max(per_row, 1)))
    src = kv.reshape(s_sets * n * groups, cg, h, w).float()  # sampling in fp32 (positions need it)
    outs = []
    for r0 in range(0, h, band):
        r1 = min(h, r0 + band)
        rows = r1 - r0
        ys = torch.arange(r0, r1, device=dev, dtype=torch.float32).view(1, rows, 1)
        xs = torch.arange(w, device=dev, dtype=torch.float32).view(1, 1, w)
        grids = []
        for off in offsets:
            o = off[:, :, r0:r1].float().reshape(n, groups, k_pts, 2, rows, w)
            py = ys + ky + o[:, :, :, 0]  # (n, G, K, rows, W) pixel positions
            px = xs + kx + o[:, :, :, 1]
            # align_corners=False normalisation: exact for any size (also H or W == 1)
            grids.append(torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1))
        grid = torch.stack(grids).view(s_sets * n * groups, k_pts * rows, w, 2)
        smp = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        # (S*N*G, cg, K*rows, W) -> (N, heads, rows*W, S*K, d) for keys and values
        smp = smp.view(s_sets, n, 2 * p, k_pts, rows * w).to(q.dtype)
        smp = smp.view(s_sets, n, 2, heads, d, k_pts, rows * w).permute(2, 1, 3, 6, 0, 5, 4)
        # 4-D for the fused kernels: batch n*heads, "heads" = pixels, one query per pixel
        keys = smp[0].reshape(n * heads, rows * w, s_sets * k_pts, d)
        vals = smp[1].reshape(n * heads, rows * w, s_sets * k_pts, d)
        qb = q[:, :, r0:r1].reshape(n * heads, d, rows * w).transpose(1, 2).unsqueeze(2)  # (n*heads, rows*W, 1, d)
        o = F.scaled_dot_product_attention(qb, keys, vals, scale=d**-0.5)  # (n*heads, rows*W, 1, d)
        outs.append(o.squeeze(2).transpose(1, 2).reshape(n, p, rows, w))
    return torch.cat(outs, dim=2)


class GuidedDeformableAttention(nn.Module):
    """Clip-to-clip alignment of RVRT (official ``GuidedDeformAttnPack``), for 2-frame clips.

    Args:
        channels: feature channels ``C`` (projections use ``2C``).
        attention_window: sampling window ``(kh, kw)``.
        attention_heads: heads.
        deformable_groups: offset groups over the ``4C`` key/value channels.
        max_residue_magnitude: bound of the learnt offset residue (pixels).
    """

    clip_size = 2

    def __init__(self, channels: int, attention_window: Sequence[int] = (3, 3), attention_heads: int = 12,
                 deformable_groups: int = 12, max_residue_magnitude: float = 10.0) -> None:
        super().__init__()
        self.kernel = tuple(attention_window)
        self.heads = attention_heads
        self.groups = deformable_groups
        self.max_residue_magnitude = max_residue_magnitude
        k_pts = self.kernel[0] * self.kernel[1]
        clip = self.clip_size
        proj = 2 * channels
        if proj % attention_heads or (2 * proj) % deformable_groups:
            raise ValueError(f"GuidedDeformableAttention: {proj} channels do not split into the heads/groups")
        self.conv_offset = nn.Sequential(
            nn.Conv2d(channels * (1 + clip) + clip * 2, 64, 1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(64, 64, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(64, 64, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(64, 64, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(64, 64, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(64, clip * deformable_groups * k_pts * 2, 1),
        )
        self.proj_q = nn.Linear(channels, proj)
        self.proj_k = nn.Linear(channels, proj)
        self.proj_v = nn.Linear(channels, proj)
        self.proj = nn.Linear(proj, channels)
        self.mlp = Mlp(channels, channels * 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, v_warped: Sequence[Tensor], flows: Sequence[Tensor],
                return_flows: bool) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        """Align the previous clip's features ``v`` to the current clip.

        Args:
            q: ``(B, 2, C, H, W)`` current clip features (queries, offset input).
            k: ``(B, 2, C, H, W)`` previous clip features (keys).
            v: ``(B, 2, C, H, W)`` previous clip propagated features (values).
            v_warped: ``[v warped with flows[0], v.flip(1) warped with flows[1]]``, each ``(B, 2, C, H, W)``.
            flows: two ``(B, 2, 2, H, W)`` fp32 flows ``(dx, dy)``: current frame ``j`` -> previous
                frame ``j``, and -> previous frame ``1 - j``.
            return_flows: also return the mean offsets as refined flows.

        Returns:
            ``(B, 2, C, H, W)`` aligned features; with ``return_flows`` also the two refined flows,
            ``(B, 2, 2, H, W)`` each.
        """
        b, t, _, h, w = q.shape
        x = torch.cat([q, *v_warped, *(f.to(q.dtype) for f in flows)], dim=2).flatten(0, 1)
        out = self.max_residue_magnitude * torch.tanh(self.conv_offset(x).float())
        off1, off2 = out.view(b, t, -1, h, w).chunk(2, dim=2)
        reps = off1.shape[2] // 2
        off1 = off1 + flows[0].float().flip(2).repeat(1, 1, reps, 1, 1)
        off2 = off2 + flows[1].float().flip(2).repeat(1, 1, reps, 1, 1)

        qp = self.proj_q(q.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3).flatten(0, 1)
        kv = torch.cat([self.proj_k(k.permute(0, 1, 3, 4, 2)), self.proj_v(v.permute(0, 1, 3, 4, 2))], dim=-1)
        kv = kv.permute(0, 1, 4, 2, 3)  # (B, 2, 4C, H, W)
        # sample set s of query frame j reads previous frame (j + s) % 2
        sources = torch.stack([kv, kv.flip(1)]).flatten(1, 2)  # (2, B*2, 4C, H, W)
        y = guided_deformable_attention(qp, sources, [off1.flatten(0, 1), off2.flatten(0, 1)],
                                        self.heads, self.groups, self.kernel)
        y = self.proj(y.unflatten(0, (b, t)).permute(0, 1, 3, 4, 2))
        y = (y + self.mlp(y)).permute(0, 1, 4, 2, 3)
        if not return_flows:
            return y
        flow1 = off1.view(b, t, reps, 2, h, w).mean(2).flip(2)
        flow2 = off2.view(b, t, reps, 2, h, w).mean(2).flip(2)
        return y, flow1, flow2


class Upsampler(nn.Module):
    """Two (conv 3x3 to 4x channels, pixel shuffle x2, LeakyReLU 0.1) stages, then a conv 3x3."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(channels, 4 * channels, 3, 1, 1) for _ in range(2)])
        self.conv_out = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W) -> (N, C, 4H, 4W)``."""
        for conv in self.convs:
            x = F.leaky_relu(F.pixel_shuffle(conv(x), 2), 0.1)
        return self.conv_out(x)


def _warp(x: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp ``(N, C, H, W)`` with an ``(N, 2, H, W)`` flow (zeros padding, align_corners)."""
    return flow_warp(x, flow.permute(0, 2, 3, 1))


class RVRT(nn.Module):
    """RVRT x4 video super-resolution (official ``RVRT`` with ``upscale=4``).

    Args:
        clip_size: frames per sub-clip (only 2 is supported, as all released models).
        window_size: attention window ``(Wd, Wh, Ww)`` of the recurrent trunks; the shallow
            feature extractor and the reconstruction use ``(1, Wh, Ww)``.
        num_blocks: :class:`RSTB` blocks of (feature extraction, each trunk, reconstruction).
        depths: Swin layers per block of the same three stages.
        embed_dims: channels of the same three stages.
        num_heads: window-attention heads of the same three stages.
        mlp_ratio: MLP hidden size / channels.
        inputconv_groups: groups of the input conv of feat_extract, the four trunks, reconstruction.
        max_residue_magnitude: bound of the deformable offsets' residue around the flow.
        deformable_groups: offset groups of the guided deformable attention.
        attention_heads: heads of the guided deformable attention.
        attention_window: its sampling window.
    """

    def __init__(
        self,
        clip_size: int = 2,
        window_size: Sequence[int] = (2, 8, 8),
        num_blocks: Sequence[int] = (1, 2, 1),
        depths: Sequence[int] = (2, 2, 2),
        embed_dims: Sequence[int] = (144, 144, 144),
        num_heads: Sequence[int] = (6, 6, 6),
        mlp_ratio: float = 2.0,
        inputconv_groups: Sequence[int] = (1, 1, 1, 1, 1, 1),
        max_residue_magnitude: float = 10.0,
        deformable_groups: int = 12,
        attention_heads: int = 12,
        attention_window: Sequence[int] = (3, 3),
    ) -> None:
        super().__init__()
        if clip_size != 2:
            raise ValueError(f"RVRT: only clip_size=2 is supported, got {clip_size}")
        self.clip_size = clip_size
        ws = tuple(window_size)
        frame_ws = (1, ws[1], ws[2])
        self.spynet = SpyNet()
        self.feat_extract = RSTBWithInputConv(3, embed_dims[0], num_blocks[0], depths[0], num_heads[0], frame_ws,
                                              inputconv_groups[0], mlp_ratio)
        self.backbone = nn.ModuleDict()
        self.deform_align = nn.ModuleDict()
        for i, name in enumerate(PASSES):
            self.deform_align[name] = GuidedDeformableAttention(
                embed_dims[1], attention_window, attention_heads, deformable_groups, max_residue_magnitude)
            self.backbone[name] = RSTBWithInputConv((2 + i) * embed_dims[0], embed_dims[1], num_blocks[1], depths[1],
                                                    num_heads[1], ws, inputconv_groups[i + 1], mlp_ratio)
        self.reconstruction = RSTBWithInputConv(5 * embed_dims[0], embed_dims[2], num_blocks[2], depths[2],
                                                num_heads[2], frame_ws, inputconv_groups[5], mlp_ratio)
        self.conv_before_upsampler = nn.Conv2d(embed_dims[-1], 64, 1)
        self.upsampler = Upsampler(64)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)

    def _reconstruct(self, lq: Tensor, feats: Sequence[Tensor]) -> Tensor:
        """``(B, t, 3, H, W)`` LR frames + their five features -> ``(B, t, 3, 4H, 4W)``."""
        b, t = lq.shape[:2]
        x = self.reconstruction(torch.cat(list(feats), dim=2)).flatten(0, 1)
        x = F.leaky_relu(self.conv_before_upsampler(x), 0.1)
        x = self.conv_last(self.upsampler(x))
        base = F.interpolate(lq.flatten(0, 1), scale_factor=4, mode="bilinear", align_corners=False)
        return (x + base.to(x.dtype)).unflatten(0, (b, t))

    def forward(self, x: Tensor) -> Tensor:
        """Super-resolve a clip.

        Args:
            x: ``(B, T, 3, H, W)`` RGB in [0, 1], any ``T >= 1`` and size (``H, W`` multiples of 8
                match the official test protocol, which pads to them).

        Returns:
            ``(B, T, 3, 4H, 4W)`` RGB, about [0, 1] (not clamped).

        Raises:
            ModelInputError: if ``x`` is not ``(B, T, 3, H, W)`` with ``T >= 1``.
        """
        if x.ndim != 5 or x.shape[2] != 3 or x.shape[1] < 1:
            raise ModelInputError(f"RVRT: expected (B, T>=1, 3, H, W), got {tuple(x.shape)}")
        t_in = x.shape[1]
        if t_in % 2:  # the official test pads the clip with its last frame(s), mirrored
            x = torch.cat([x, x[:, -1:]], dim=1)
        b, t = x.shape[:2]
        n_clips = t // 2

        shallow = [self.feat_extract(x[:, 2 * c: 2 * c + 2]) for c in range(n_clips)]
        flows = compute_flows(self.spynet, x) if n_clips > 1 else (None, None)
        feats: dict[str, list[Tensor]] = {"shallow": shallow}
        updated: dict[str, list[tuple[Tensor, Tensor]]] = {}
        outputs: list[Tensor | None] = [None] * n_clips
        for name in PASSES:
            self._propagate(name, x, feats, updated, flows, outputs)
        return torch.cat(outputs, dim=1)[:, :t_in]  # type: ignore[arg-type]

    def _propagate(self, name: str, x: Tensor, feats: dict[str, list[Tensor]],
                   updated: dict[str, list[tuple[Tensor, Tensor]]], flows: tuple[Tensor | None, Tensor | None],
                   outputs: list[Tensor | None]) -> None:
        """One pass of recurrent propagation over the two-frame clips, guided deformable attention aligning
        each clip to the previous one (``backward_1`` ... ``forward_2``).

        Args:
            name: the pass.
            x: the (even-length) ``(B, T, 3, H, W)`` LR clip.
            feats: per-clip ``(B, 2, C, H, W)`` features of ``shallow`` and the passes already run; this
                pass's are added under ``name`` (entries no later step reads are released).
            updated: the flows a ``_1`` pass refined, read (and then dropped) by its ``_2`` pass.
            flows: ``(forward, backward)`` frame flows ``(B, T-1, 2, H, W)`` (``None`` for one clip).
            outputs: the last pass stores each clip's ``(B, 2, 3, 4H, 4W)`` reconstruction here.
        """
        b = x.shape[0]
        n_clips = len(feats["shallow"])
        shallow = feats["shallow"]
        flows_fwd, flows_bwd = flows
        p_idx = PASSES.index(name)
        backward = name.startswith("backward")
        first = name.endswith("_1")
        order = list(range(n_clips))[::-1] if backward else list(range(n_clips))
        orient = (lambda f: f.flip(1)) if backward else (lambda f: f)
        earlier = list(feats)  # shallow + the passes already run, in order
        guide = feats[earlier[-1]]  # queries/keys of the alignment: the previous pass
        if n_clips > 1:
            # adj[:, k - 1]: flow on the k-th frame in propagation order to the (k-1)-th
            adj = flows_fwd if not backward else flows_bwd.flip(1)
        if first:
            updated[name] = []
        out: list[Tensor | None] = [None] * n_clips
        feat_prop = None
        for i, c in enumerate(order):
            if i == 0:
                feat_prop = torch.zeros_like(shallow[c])
            else:
                if first:
                    f01, f12, f23 = adj[:, 2 * i - 2], adj[:, 2 * i - 1], adj[:, 2 * i]
                    f02 = f12 + _warp(f01, f12)
                    f13 = f23 + _warp(f12, f23)
                    f03 = f23 + _warp(f02, f23)
                    flow_a = torch.stack([f02, f13], 1)
                    flow_b = torch.stack([f12, f03], 1)
                else:
                    flow_a, flow_b = updated[name.replace("_2", "_1")][i - 1]
                warped_a = flow_warp(feat_prop.flatten(0, 1), flow_a.flatten(0, 1).permute(0, 2, 3, 1))
                warped_b = flow_warp(feat_prop.flip(1).flatten(0, 1), flow_b.flatten(0, 1).permute(0, 2, 3, 1))
                aligned = self.deform_align[name](
                    orient(guide[c]), orient(guide[order[i - 1]]), feat_prop,
                    [warped_a.unflatten(0, (b, 2)), warped_b.unflatten(0, (b, 2))], [flow_a, flow_b], first)
                if first:
                    feat_prop, fa, fb = aligned
                    updated[name].append((fa, fb))
                else:
                    feat_prop = aligned
            inputs = [orient(feats[k][c]) for k in earlier] + [feat_prop]
            feat_prop = feat_prop + self.backbone[name](torch.cat(inputs, dim=2))
            out[c] = orient(feat_prop)
            if p_idx == len(PASSES) - 1:  # all five features of clip c exist: reconstruct it now
                outputs[c] = self._reconstruct(x[:, 2 * c: 2 * c + 2], [feats[k][c] for k in earlier] + [out[c]])
                for k in earlier[:-1]:
                    feats[k][c] = None  # type: ignore[call-overload]
                if i > 0:  # clip c of the previous pass is the next step's keys; the clip before it is done
                    guide[order[i - 1]] = None  # type: ignore[call-overload]
        feats[name] = out  # type: ignore[assignment]
        if not first:
            updated.pop(name.replace("_2", "_1"), None)


_STAGE = r"^(feat_extract|reconstruction|backbone\.\w+)\."
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(_STAGE + r"main\.1\."), r"\1.conv_in."),
    (re.compile(_STAGE + r"main\.3\."), r"\1.norm_in."),
    (re.compile(_STAGE + r"main\.5\.(\d+)\.residual_group\.blocks\.(\d+)\."), r"\1.blocks.\2.layers.\3."),
    (re.compile(_STAGE + r"main\.5\.(\d+)\.linear\."), r"\1.blocks.\2.linear."),
    (re.compile(_STAGE + r"main\.7\."), r"\1.norm_out."),
    (re.compile(r"^(deform_align\.\w+)\.(proj_q|proj_k|proj_v|proj|mlp)\.1\."), r"\1.\2."),
    (re.compile(r"^conv_before_upsampler\.0\."), "conv_before_upsampler."),
    (re.compile(r"^upsampler\.0\."), "upsampler.convs.0."),
    (re.compile(r"^upsampler\.5\."), "upsampler.convs.1."),
    (re.compile(r"^upsampler\.10\."), "upsampler.conv_out."),
]


def convert_official(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official RVRT state dict (unwrapped from ``params``) -> ours (see the module docstring).

    Args:
        state_dict: official keys -> tensors (a ``{'params': ...}`` wrapper is also unwrapped:
            the official test script accepts both forms).

    Returns:
        Our keys -> tensors; loads into :class:`RVRT` with ``strict=True``.
    """
    for wrapper in ("params_ema", "params"):  # the official loader accepts a wrapped or a bare dict
        if isinstance(state_dict.get(wrapper), dict):
            state_dict = state_dict[wrapper]
            break
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(value, Tensor) or key.endswith("relative_position_index"):
            continue
        for pattern, repl in _RULES:
            key = pattern.sub(repl, key)
        if value.ndim == 5 and value.shape[2] == 1:  # depth-1 Conv3d -> Conv2d
            value = value.squeeze(2)
        out[key] = value
    return add_spynet_buffers(out)
