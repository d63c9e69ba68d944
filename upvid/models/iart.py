"""IART: implicit resampling-based alignment + recurrent Swin-transformer propagation (x4 VSR).

Paper: Kai Xu, Ziwei Yu, Xin Wang, Michael Bi Mi, Angela Yao, "Enhancing Video Super-Resolution
via Implicit Resampling-based Alignment" (arXiv title: "An Implicit Alignment for Video
Super-Resolution"), CVPR 2024. Official code: kai422/IART (``archs/iart_arch.py``,
``archs/implicit_alignment.py``, ``archs/psrt_sliding_arch.py``; built on BasicSR and PSRT), MIT
licence. Checkpoints: the authors' Google Drive folder (``IART_REDS_BI_N16.pth``,
``IART_REDS_BI_N6.pth``, ``IART_Vimeo-90K_BI.pth``, ``IART_Vimeo-90K_BD.pth``).
This is a clean reimplementation with the official parameter names and the same numerics.

Network, for a clip of ``T`` low-resolution frames ``(B, T, 3, H, W)`` in [0, 1]:

1. per-frame features: one 3x3 conv to ``embed_dim`` channels (``conv_first``);
2. SpyNet flows (BasicSR's, ``spynet.*``) between neighbouring frames, both directions;
3. four propagation passes ``backward_1``, ``forward_1``, ``backward_2``, ``forward_2``; pass ``k``
   reads the output of pass ``k - 1`` (the first reads the spatial features). At each frame the
   pass's previous output ``f_{i-1}`` and the one before ``f_{i-2}`` are aligned to the current
   feature ``x_i`` by :class:`ImplicitWarp` (with ``flow_1`` and the composed
   ``flow_2 = flow_1 + warp(flow_{i-1 -> i-2}, flow_1)``); the stack ``[a_1, x_i, a_2]`` goes
   through a 3-frame Swin transformer (:class:`SwinFusion`, ``swin_backbone.<pass>``) whose
   centre-frame output is the pass's new feature. The first frame of a pass sees
   ``[x_i, x_i, x_i]``; the second gets zeros for ``a_2``.
4. reconstruction per frame from the last pass: conv -> two pixel-shuffle x2 -> conv -> conv ->
   RGB, plus the bilinear x4 of the LR frame.

Implicit alignment (:class:`ImplicitWarp`): instead of bilinear sampling, each target pixel
``p`` attends (multi-head, ``num_heads[0]`` heads, one query, 4 keys) over the 2x2 integer
neighbourhood of ``p + flow(p)`` in the source feature (indices clamped at the borders). Keys and
values are the source features plus a fixed sine encoding of the 4 window positions; the query
is the target feature plus a sine encoding of the fractional part of ``p + flow(p)``
(temperature 0.01).

Swin fusion (:class:`SwinFusion`, the reference's ``SwinIRFM``): LayerNorm, ``len(depths)``
residual groups of ``depths[i]`` 3D window-attention blocks (window ``(3, 8, 8)``: all three
frames x 8 x 8 pixels, relative position bias, every second block shifted by ``(3, 4, 4)`` with
the usual -100 mask; feature maps zero-padded to a window multiple after the block's first norm,
as in the reference) + a 3x3 conv each, LayerNorm, conv on the centre frame + residual.
Attention is ``F.scaled_dot_product_attention`` (via :func:`~upvid.models.blocks.attention`, which
pads the head dim 20 to 24 on CUDA for the fused kernels) with the reference's scale and the relative
position bias (plus the shift mask) as a float ``attn_mask``; shifted windows are processed in
chunks so that the per-window masks are never all materialised.

Size rules: none for the network. The reference asserts ``H, W >= 64`` (a check copied from
BasicVSR++); the network itself takes any size (SpyNet resizes to a multiple of 32 internally,
the Swin blocks zero-pad to the window like the reference does for REDS' 180 rows), so smaller
inputs are accepted here and inputs of at least 64 px give the reference's numbers. Only a wrong
tensor shape raises :class:`~upvid.errors.ModelInputError`.

Differences from the reference that do not change the numbers:

- The official ``cpu_cache`` (features parked in host memory for clips over 100 frames on CUDA)
  is not reproduced: upvid streams bounded clips (``frames``/``overlap`` in ``weights.toml``).
  Instead each pass releases its input features as it consumes them and the last pass
  reconstructs every frame as soon as its feature is ready, so about one feature map per frame
  (``embed_dim * H * W`` floats) is alive at a time instead of the reference's five.
- The spatial features are computed frame by frame (the same convolution).
- The official "mirror-extended input" shortcut (reuse the flipped backward flows when the clip is
  ``x + x[::-1]``) is not reproduced; it only saves time, and its flag is sticky in the reference.
- A single-frame clip is accepted (no flow is needed).
- The sampling grid of the implicit warp and all flows stay fp32 under autocast.
- The reference builds ``swin_backbone`` only when CUDA is available (and hard-codes
  ``device='cuda'`` in the query encoding); here the network is the same on every device.

Checkpoint conversion (:func:`convert_official`): BasicSR-style ``{'params': {...}}`` (and
``params_ema``); after unwrapping (``key = "params"``, the official test scripts' choice) every
key is already ours: ``conv_first``, ``spynet.basic_module.{i}.basic_module.{2j}``,
``swin_backbone.<pass>.{conv_first, conv_first_feat, patch_embed.norm,
layers.{i}.residual_group.blocks.{j}.{norm1, attn.{relative_position_bias_table,
relative_position_index, qkv, proj}, norm2, mlp.fc1, mlp.fc2}, layers.{i}.conv, norm,
conv_after_body, conv_before_upsample}``, ``implicit_warp.{q, k, v, position_bias,
window_idx_offset}``, ``conv_before_upsample``, ``upconv1``, ``upconv2``, ``conv_hr``,
``conv_last``. ``convert_official`` strips a ``module.`` prefix if present, drops keys the network
does not have (the official scripts load with ``strict=False``) and fills in the constant buffers
(SpyNet ``mean``/``std``, ``relative_position_index``, ``position_bias``, ``window_idx_offset``)
when a checkpoint lacks them. The unused ``swin_backbone.*.conv_first``, ``conv_first_feat`` and
``conv_before_upsample`` are kept (they are in the official state dict).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from upvid.errors import ModelInputError
from upvid.models.blocks import PASSES, Mlp, X4Head, attention
from upvid.models.flow import SpyNet, compute_flows, flow_warp
from upvid.models.swin import MASK_VALUE, relative_position_index, shift_region_labels, window_partition, window_reverse

__all__ = ["IART", "ImplicitWarp", "SwinFusion", "convert_official"]

_CHUNK_ELEMS = 1 << 23  # attention-mask elements per chunk of shifted windows (32 MiB in fp32)


# ----------------------------------------------------------------------------- window helpers


# ----------------------------------------------------------------------------- Swin fusion


class WindowAttention3D(nn.Module):
    """Multi-head self-attention inside 3D windows with a learned relative position bias.

    Keys: ``relative_position_bias_table`` ``((2wd-1)(2wh-1)(2ww-1), heads)``, buffer
    ``relative_position_index`` ``(N, N)``, ``qkv`` (Linear dim -> 3 dim), ``proj``.

    Args:
        dim: channels ``C``.
        window: ``(wd, wh, ww)``.
        num_heads: heads (``C`` divisible by it).
    """

    def __init__(self, dim: int, window: Sequence[int], num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        wd, wh, ww = window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1), num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, regions: Tensor | None = None) -> Tensor:
        """Attend within each window.

        Args:
            x: ``(B * nW, N, C)`` window tokens, windows of one image consecutive (``nW`` each).
            regions: ``(nW, N)`` shift-region labels (shifted windows), or ``None``.

        Returns:
            ``(B * nW, N, C)``.
        """
        bw, n, c = x.shape
        heads = self.num_heads
        q, k, v = self.qkv(x).view(bw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
        idx = self.relative_position_index[:n, :n].reshape(-1)
        bias = self.relative_position_bias_table[idx].view(n, n, heads).permute(2, 0, 1).to(q.dtype)  # (h, N, N)
        if regions is None:
            out = attention(q, k, v, attn_mask=bias.unsqueeze(0), scale=self.scale)
        else:
            nw = regions.shape[0]
            out = torch.empty_like(q)
            step = max(1, _CHUNK_ELEMS // (heads * n * n))
            for s in range(0, bw, step):
                e = min(bw, s + step)
                lab = regions[torch.arange(s, e, device=x.device) % nw]  # (m, N)
                cross = (lab[:, :, None] != lab[:, None, :]).to(q.dtype) * MASK_VALUE
                mask = bias.unsqueeze(0) + cross.unsqueeze(1)  # (m, h, N, N)
                out[s:e] = attention(q[s:e], k[s:e], v[s:e], attn_mask=mask, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinBlock3D(nn.Module):
    """Pre-norm 3D (shifted-)window attention block + MLP, both residual.

    Keys: ``norm1``, ``attn.*`` (:class:`WindowAttention3D`), ``norm2``, ``mlp.fc1``, ``mlp.fc2``.

    Args:
        dim: channels ``C``.
        window: ``(wd, wh, ww)``.
        shift: cyclic shift ``(sd, sh, sw)``, all zero for a plain window block.
        num_heads: heads.
        mlp_ratio: MLP hidden width / ``C``.
    """

    def __init__(self, dim: int, window: Sequence[int], shift: Sequence[int], num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.window = tuple(window)
        self.shift = tuple(shift)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, window, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    @property
    def shifted(self) -> bool:
        return any(s > 0 for s in self.shift)

    def forward(self, x: Tensor, regions: Tensor | None) -> Tensor:
        """``(B, T, H, W, C) -> (B, T, H, W, C)``; ``regions``: :func:`~upvid.models.swin.shift_region_labels`
        of the padded size."""
        b, t, h, w, _ = x.shape
        y = self.norm1(x)
        wd, wh, ww = self.window
        pt, ph, pw = (-t) % wd, (-h) % wh, (-w) % ww
        if pt or ph or pw:  # zero tokens after the norm, as in the reference
            y = F.pad(y, (0, 0, 0, pw, 0, ph, 0, pt))
        _, dp, hp, wp, _ = y.shape
        if self.shifted:
            y = torch.roll(y, shifts=tuple(-s for s in self.shift), dims=(1, 2, 3))
        y = self.attn(window_partition(y, self.window), regions if self.shifted else None)
        y = window_reverse(y, self.window, b, dp, hp, wp)
        if self.shifted:
            y = torch.roll(y, shifts=self.shift, dims=(1, 2, 3))
        if pt or ph or pw:
            y = y[:, :t, :h, :w]
        x = x + y
        return x + self.mlp(self.norm2(x))


class _BlockStack(nn.Module):
    """``blocks`` of alternating plain / shifted :class:`SwinBlock3D` (key path ``residual_group.blocks``)."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: Sequence[int], mlp_ratio: float) -> None:
        super().__init__()
        shift = (window[0], window[1] // 2, window[2] // 2)
        self.blocks = nn.ModuleList(
            SwinBlock3D(dim, window, (0, 0, 0) if i % 2 == 0 else shift, num_heads, mlp_ratio) for i in range(depth)
        )


class ResidualSwinGroup(nn.Module):
    """A residual group: Swin blocks, then a per-frame 3x3 conv, plus the group's input.

    Keys: ``residual_group.blocks.{j}.*``, ``conv``.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window: Sequence[int], mlp_ratio: float) -> None:
        super().__init__()
        self.residual_group = _BlockStack(dim, depth, num_heads, window, mlp_ratio)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: Tensor, regions: Tensor | None) -> Tensor:
        """``(B, T, H, W, C) -> (B, T, H, W, C)``."""
        y = x
        for blk in self.residual_group.blocks:
            y = blk(y, regions)
        b, t, h, w, c = y.shape
        y = self.conv(y.permute(0, 1, 4, 2, 3).reshape(b * t, c, h, w))
        return x + y.view(b, t, c, h, w).permute(0, 1, 3, 4, 2)


class _TokenNorm(nn.Module):
    """LayerNorm over channels (key ``norm``), the reference's ``patch_embed`` with patch size 1."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)


class SwinFusion(nn.Module):
    """Three-frame Swin transformer fusing ``[aligned f_{i-1}, x_i, aligned f_{i-2}]`` (ref. ``SwinIRFM``).

    Keys: ``conv_first`` (3 -> C), ``conv_first_feat`` (64 -> C), ``patch_embed.norm``,
    ``layers.{i}.*`` (:class:`ResidualSwinGroup`), ``norm``, ``conv_after_body``,
    ``conv_before_upsample`` (C -> 64). ``conv_first``/``conv_first_feat`` only act when the input
    has 3 / 64 channels and ``conv_before_upsample`` never does in IART; they are kept for the
    official state dict.

    Args:
        embed_dim: channels ``C``.
        depths: blocks per residual group.
        num_heads: heads per residual group.
        window: 3D window ``(wd, wh, ww)``; the shifted blocks shift by ``(wd, wh // 2, ww // 2)``.
        mlp_ratio: MLP width / ``C`` (IART: 2).
    """

    def __init__(
        self,
        embed_dim: int,
        depths: Sequence[int],
        num_heads: Sequence[int],
        window: Sequence[int],
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        self.window = tuple(window)
        self.shift = (window[0], window[1] // 2, window[2] // 2)
        self.conv_first = nn.Conv2d(3, embed_dim, 3, 1, 1)
        self.conv_first_feat = nn.Conv2d(64, embed_dim, 3, 1, 1)
        self.patch_embed = _TokenNorm(embed_dim)
        self.layers = nn.ModuleList(
            ResidualSwinGroup(embed_dim, d, h, window, mlp_ratio) for d, h in zip(depths, num_heads)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.conv_before_upsample = nn.Conv2d(embed_dim, 64, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Fuse a short stack of feature maps into the centre one.

        Args:
            x: ``(B, T, C, H, W)`` features (IART: ``T = 3``, ``C = embed_dim``).

        Returns:
            ``(B, embed_dim, H, W)``: the refined centre frame ``T // 2``.
        """
        b, t, c, h, w = x.shape
        if c in (3, 64):  # the reference's input convs (never taken inside IART unless embed_dim is 3 or 64)
            conv = self.conv_first if c == 3 else self.conv_first_feat
            x = conv(x.reshape(b * t, c, h, w)).view(b, t, -1, h, w)
        centre = x[:, t // 2]
        y = self.patch_embed.norm(x.permute(0, 1, 3, 4, 2))  # (B, T, H, W, C)
        padded = [n + (-n) % m for n, m in zip((t, h, w), self.window)]
        regions = shift_region_labels(padded, self.window, self.shift, x.device)
        for layer in self.layers:
            y = layer(y, regions)
        y = self.norm(y[:, t // 2]).permute(0, 3, 1, 2)
        return self.conv_after_body(y) + centre


# ----------------------------------------------------------------------------- implicit warp


def _sine_encoding(coords: Tensor, num_feats: int, temperature: float) -> Tensor:
    """DETR-style sine encoding of ``(..., 2)`` coordinates ``(y, x)`` already scaled to radians.

    Returns ``(..., 2 * num_feats)``: ``[enc(y), enc(x)]``, each interleaving ``sin`` (even
    features) and ``cos`` (odd features) of ``coord / temperature ** (2 * (i // 2) / num_feats)``.
    """
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=coords.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="trunc") / num_feats)
    out = []
    for axis in (0, 1):
        p = coords[..., axis, None] / dim_t
        out.append(torch.stack((p[..., 0::2].sin(), p[..., 1::2].cos()), dim=-1).flatten(-2))
    return torch.cat(out, dim=-1)


class ImplicitWarp(nn.Module):
    """Flow-guided implicit alignment: attention over the 2x2 neighbourhood of ``p + flow(p)``.

    Keys: ``q``, ``k``, ``v`` (Linear C -> C), buffers ``position_bias`` ``(1, 4, C)`` (sine
    encoding of the window positions) and ``window_idx_offset`` ``(4, 2)`` (the ``(dy, dx)`` of the
    window positions, int64).

    Args:
        dim: channels ``C`` (also the encoding width).
        num_heads: heads.
        temperature: sine-encoding temperature (IART: 0.01).
        window: neighbourhood side (IART: 2).
    """

    def __init__(self, dim: int, num_heads: int, temperature: float = 0.01, window: int = 2) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"ImplicitWarp: dim {dim} not divisible by {num_heads} heads")
        self.dim = dim
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.temperature = temperature
        self.window = window
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.register_buffer("position_bias", self.window_encoding(window, dim, temperature))
        dy, dx = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        self.register_buffer("window_idx_offset", torch.stack((dy, dx), 2).reshape(window * window, 2))

    @staticmethod
    def window_encoding(window: int, dim: int, temperature: float) -> Tensor:
        """The constant ``position_bias``: ``(1, window**2, dim)``, positions normalised to [0, 2 pi]."""
        ones = torch.ones(1, window, window)
        y = ones.cumsum(1, dtype=torch.float32) - 1
        x = ones.cumsum(2, dtype=torch.float32) - 1
        y = y / (y[:, -1:, :] + 1e-6) * (2 * math.pi)
        x = x / (x[:, :, -1:] + 1e-6) * (2 * math.pi)
        return _sine_encoding(torch.stack((y, x), -1), dim // 2, temperature).flatten(1, 2).contiguous()

    def forward(self, src: Tensor, dst: Tensor, flow: Tensor) -> Tensor:
        """Align ``src`` to ``dst``.

        Args:
            src: ``(N, C, H, W)`` feature to be aligned (the propagated one).
            dst: ``(N, C, H, W)`` feature of the current frame (the queries).
            flow: ``(N, H, W, 2)`` flow from ``dst`` to ``src`` in pixels, ``(dx, dy)``.

        Returns:
            ``(N, C, H, W)`` aligned feature, dtype of ``dst``.

        Raises:
            ValueError: if the flow's size differs from the features'.
        """
        if dst.shape[-2:] != flow.shape[1:3]:
            raise ValueError(f"ImplicitWarp: features are {tuple(dst.shape[-2:])} but flow is {tuple(flow.shape[1:3])}")
        n, c, h, w = dst.shape
        kk = self.window * self.window
        gy, gx = torch.meshgrid(
            torch.arange(h, device=dst.device, dtype=torch.float32),
            torch.arange(w, device=dst.device, dtype=torch.float32),
            indexing="ij",
        )
        pos = torch.stack((gy, gx), -1) + flow.float().flip(-1)  # (N, H, W, 2) as (row, col), fp32
        base = torch.floor(pos)
        frac = (pos - base).reshape(n, h * w, 2)
        cell = base.to(torch.int32).reshape(n, h * w, 1, 2) + self.window_idx_offset  # (N, HW, kk, 2) int64
        rows = cell[..., 0].clamp(0, h - 1)
        cols = cell[..., 1].clamp(0, w - 1)
        index = (rows * w + cols).reshape(n, h * w * kk, 1).expand(-1, -1, c)
        tokens = src.flatten(2).transpose(1, 2)  # (N, HW, C)
        nbrs = tokens.gather(1, index).view(n, h * w, kk, c) + self.position_bias.to(src.dtype).unsqueeze(0)
        frac = frac / (self.window + 1e-6) * (2 * math.pi)
        query = dst.flatten(2).transpose(1, 2) + _sine_encoding(frac, c // 2, self.temperature).to(dst.dtype)
        heads, d = self.num_heads, c // self.num_heads
        q = self.q(query).reshape(n * h * w, 1, heads, d).transpose(1, 2)  # (NHW, heads, 1, d)
        k = self.k(nbrs).reshape(n * h * w, kk, heads, d).transpose(1, 2)  # (NHW, heads, kk, d)
        v = self.v(nbrs).reshape(n * h * w, kk, heads, d).transpose(1, 2)
        out = attention(q, k, v, scale=self.scale)  # (NHW, heads, 1, d)
        return out.reshape(n, h, w, c).permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------- IART


class IART(X4Head):
    """IART x4 video super-resolution (recurrent, bidirectional, second order).

    Args:
        mid_channels: channels of the reconstruction head (official: 64).
        embed_dim: feature / transformer channels ``C`` (official: 120).
        depths: Swin blocks per residual group (official: ``(6, 6, 6)``).
        num_heads: heads per group; ``num_heads[0]`` also for the implicit warp (official: 6s).
        window_size: 3D attention window ``(frames, h, w)`` (official: ``(3, 8, 8)``).
        mlp_ratio: Swin MLP width / ``C`` (official: 2).
        pe_temperature: temperature of the implicit warp's sine encodings (official: 0.01).
    """

    def __init__(
        self,
        mid_channels: int = 64,
        embed_dim: int = 120,
        depths: Sequence[int] = (6, 6, 6),
        num_heads: Sequence[int] = (6, 6, 6),
        window_size: Sequence[int] = (3, 8, 8),
        mlp_ratio: float = 2.0,
        pe_temperature: float = 0.01,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.spynet = SpyNet()
        self.conv_first = nn.Conv2d(3, embed_dim, 3, 1, 1)
        self.swin_backbone = nn.ModuleDict(
            {p: SwinFusion(embed_dim, depths, num_heads, window_size, mlp_ratio) for p in PASSES}
        )
        self.implicit_warp = ImplicitWarp(embed_dim, num_heads[0], pe_temperature)
        self.conv_before_upsample = nn.Conv2d(embed_dim, mid_channels, 3, 1, 1)
        self._build_head(mid_channels)

    def _propagate(
        self, feats: list[Tensor | None], flows: Tensor | None, name: str, sink: Callable[[int, Tensor], None] | None = None
    ) -> list[Tensor | None]:
        """One pass over the clip.

        ``feats`` (the previous pass's outputs, frame order) is consumed: each entry is released
        once used. Returns this pass's ``T`` outputs in frame order; with ``sink``, each output is
        handed to ``sink(frame, feature)`` instead and only the two the recursion needs are kept.
        """
        t = len(feats)
        backward = name.startswith("backward")
        order = range(t - 1, -1, -1) if backward else range(t)
        fusion = self.swin_backbone[name]
        out: list[Tensor | None] = [None] * t
        prev: list[Tensor] = []  # the last two outputs of this pass, most recent last
        for i, idx in enumerate(order):
            cur = feats[idx]
            feats[idx] = None
            if i == 0:
                prop = fusion(torch.stack([cur, cur, cur], dim=1))
            else:
                # flow from the current frame to the previously processed one
                flow1 = flows[:, idx if backward else idx - 1].permute(0, 2, 3, 1)
                a1 = self.implicit_warp(prev[-1], cur, flow1)
                if i > 1:
                    before = order[i - 1]
                    flow2 = flow1.permute(0, 3, 1, 2) + flow_warp(flows[:, before if backward else before - 1], flow1)
                    a2 = self.implicit_warp(prev[-2], cur, flow2.permute(0, 2, 3, 1))
                else:
                    a2 = torch.zeros_like(a1)
                prop = fusion(torch.stack([a1, cur, a2], dim=1))
            del cur
            prev = [*prev[-1:], prop]
            if sink is None:
                out[idx] = prop
            else:
                sink(idx, prop)
        return out

    def _reconstruct(self, feat: Tensor, lr: Tensor) -> Tensor:
        """``(B, C, H, W)`` feature + ``(B, 3, H, W)`` LR frame -> ``(B, 3, 4H, 4W)``."""
        return self._upsample(self.conv_before_upsample(feat), lr)

    def forward(self, x: Tensor) -> Tensor:
        """Super-resolve a clip.

        Args:
            x: ``(B, T, 3, H, W)`` RGB in [0, 1], any ``T >= 1``, any ``H, W >= 1``.

        Returns:
            ``(B, T, 3, 4H, 4W)`` RGB, about [0, 1] (not clamped).

        Raises:
            ModelInputError: if ``x`` is not ``(B, T, 3, H, W)`` with ``T >= 1``.
        """
        if x.ndim != 5 or x.shape[2] != 3 or x.shape[1] < 1:
            raise ModelInputError(f"IART: expected (B, T, 3, H, W), got {tuple(x.shape)}")
        t = x.shape[1]
        feats: list[Tensor | None] = [self.conv_first(x[:, i]) for i in range(t)]
        flows_fwd, flows_bwd = compute_flows(self.spynet, x) if t > 1 else (None, None)
        for name in PASSES[:-1]:
            feats = self._propagate(feats, flows_bwd if name.startswith("backward") else flows_fwd, name)
        frames: list[Tensor | None] = [None] * t

        def reconstruct(i: int, feat: Tensor) -> None:  # as soon as the last pass has frame i
            frames[i] = self._reconstruct(feat, x[:, i])

        self._propagate(feats, flows_fwd, PASSES[-1], sink=reconstruct)
        return torch.stack(frames, dim=1)


def convert_official(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official IART checkpoint (already unwrapped from ``params``) -> our keys (mostly identical).

    Strips a ``module.`` prefix (DDP), drops keys our network lacks, and adds the constant
    buffers (SpyNet ``mean``/``std``, Swin ``relative_position_index``, implicit-warp
    ``position_bias``/``window_idx_offset``) when absent. The network config is read from the
    tensor shapes where needed (window from the bias table, ``embed_dim`` from ``conv_first``;
    square spatial windows assumed, as in every official config).

    Args:
        state_dict: official key -> tensor.

    Returns:
        Our key -> tensor, loadable with ``strict=True`` into :class:`IART` of the same config.
    """
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    embed = sd["conv_first.weight"].shape[0] if "conv_first.weight" in sd else 120
    window = _infer_window(sd)
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        if _is_our_key(key):
            out[key] = value
    out.setdefault("spynet.mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
    out.setdefault("spynet.std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
    index = relative_position_index(window)
    for key in [k for k in out if k.endswith("attn.relative_position_bias_table")]:
        out.setdefault(key.replace("relative_position_bias_table", "relative_position_index"), index.clone())
    out.setdefault("implicit_warp.position_bias", ImplicitWarp.window_encoding(2, embed, 0.01))
    dy, dx = torch.meshgrid(torch.arange(2), torch.arange(2), indexing="ij")
    out.setdefault("implicit_warp.window_idx_offset", torch.stack((dy, dx), 2).reshape(4, 2))
    return out


def _infer_window(sd: dict[str, Tensor]) -> tuple[int, int, int]:
    """The attention window ``(wd, w, w)`` from a bias table's ``(2wd-1)(2w-1)**2`` rows (official: (3, 8, 8))."""
    for key, value in sd.items():
        if key.endswith("relative_position_bias_table"):
            rows = value.shape[0]
            for wd in (3, 2, 1, 4, 5, 6):
                side = math.isqrt(rows // (2 * wd - 1))
                if rows % (2 * wd - 1) == 0 and side * side * (2 * wd - 1) == rows and side % 2 == 1:
                    return (wd, (side + 1) // 2, (side + 1) // 2)
    return (3, 8, 8)


_OUR_PREFIXES = (
    "spynet.", "conv_first.", "swin_backbone.", "implicit_warp.", "conv_before_upsample.",
    "upconv1.", "upconv2.", "conv_hr.", "conv_last.",
)


def _is_our_key(key: str) -> bool:
    return key.startswith(_OUR_PREFIXES)
