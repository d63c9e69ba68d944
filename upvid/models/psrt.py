"""PSRT-recurrent: a recurrent video super-resolution Transformer with patch alignment (x4).

Paper: Shuwei Shi, Jinjin Gu, Liangbin Xie, Xintao Wang, Yujiu Yang, Chao Dong, "Rethinking
Alignment in Video Super-Resolution Transformers", NeurIPS 2022 (arXiv:2207.08494).
Official code: XPixelGroup/RethinkVSRAlignment (``archs/psrt_recurrent_arch.py``, class
``BasicRecurrentSwin``, whose propagation blocks are ``SwinIRFM`` from ``archs/psrt_sliding_arch.py``),
built on BasicSR. Licence: none stated clearly (no LICENSE file; ``setup.py`` says BSD-3-Clause
with an Apache-2.0 classifier; BasicSR, which it extends, is Apache-2.0).
Checkpoints ``PSRT_REDS.pth`` / ``PSRT_Vimeo.pth`` in the authors' Google Drive folder (README).
This is a clean reimplementation with the official parameter names and the same numerics.

Network, for a clip of ``T`` low-resolution frames (``C = embed_dim``, 120 in the official model):

1. per-frame features: one 3x3 conv (``conv_first``), RGB -> ``C``;
2. SpyNet flows between neighbouring frames, both directions (BasicSR's SpyNet);
3. four propagation passes ``backward_1``, ``forward_1``, ``backward_2``, ``forward_2``; each
   pass walks the clip and, at every frame, runs its own multi-frame Swin Transformer
   (``patch_align.<pass>``, :class:`PatchAlignTransformer`) on the 3-frame stack
   ``[pa(h_{i-1}), x_i, pa(h_{i-2})]``, where ``x_i`` is the frame's output of the previous pass
   (the spatial features for the first), ``h`` are this pass's earlier outputs, and ``pa`` is
   *patch alignment* (:func:`patch_align_warp`): the flow is averaged over 8x8 patches and each
   patch is moved as a whole (nearest-neighbour sampling). ``h_{i-2}`` is warped with the
   composed flow ``f_1 + warp(f_{step}, f_1)``; the first frame of a pass sees ``[x_i, x_i, x_i]``
   and the second a zero ``h_{i-2}``. Only the centre (current) frame of the Transformer's output
   is kept: ``conv_after_body(norm(body(stack)))[centre] + x_i``;
4. reconstruction from the last pass: conv ``C`` -> 64, two conv + pixel-shuffle x2 (LeakyReLU
   0.1), conv + LeakyReLU, conv -> RGB, added to the bilinear x4 of the LR frame.

The Transformer (:class:`PatchAlignTransformer`, official ``SwinIRFM``): LayerNorm
(``patch_embed.norm``), then residual groups (``layers.{i}``) of Swin blocks over 3D windows
``(3, 8, 8)`` (frames, height, width), every second block shifted by ``(3, 4, 4)``, each group
closed by a 3x3 conv and a skip; a final LayerNorm (``norm``) and ``conv_after_body``. Window
attention has a learned relative-position bias; in shifted blocks, tokens from different regions
of the cyclically shifted map get ``-100`` added to their logits. Inputs whose size is not a
multiple of the window are zero-padded (after ``norm1``) inside every block, as in the reference.

Differences from the reference that do not change the numbers:

- Attention runs through ``F.scaled_dot_product_attention`` (:func:`~upvid.models.blocks.attention`:
  head dim padded to a multiple of 8 on CUDA; explicit ``scale=head_dim**-0.5``,
  bias and shift mask as an additive ``attn_mask``), over chunks of windows (bounded memory).
  The shift mask (zero inside most windows) is applied only to the windows that straddle a
  region boundary, built from per-token region ids rather than one ``(nW, N, N)`` tensor.
- Padding, cyclic shift and window partition (and their inverses) are one precomputed token
  gather each (:class:`_WindowPlan`) instead of pad/roll/permute copies.
- SpyNet runs over the frame pairs in chunks (:func:`upvid.models.basicvsr.compute_flows`) in
  fp32; flows and sampling grids stay fp32 under autocast.
- Each pass keeps only the previous pass's features (the reference keeps all five lists), and
  the reconstruction of a frame runs as soon as the last pass produces it. The official
  ``cpu_cache`` (CUDA clips over 100 frames parked in host memory) is not reproduced: upvid
  streams bounded clips (``frames``/``overlap`` in ``weights.toml``).
- The "mirror-extended input" shortcut (reuse the backward flows; its flag is sticky in the
  reference) is not reproduced: it only saves time.
- The reference asserts ``H, W >= 64``; smaller inputs are padded here (reflect, replicate where
  reflect cannot reach) to 64 and the output cropped back. A single-frame clip is accepted.
- The reference builds the four Transformers only ``if torch.cuda.is_available()`` (on a CPU-only
  machine its network has no propagation modules at all); here they always exist.
- ``SwinIRFM``'s ``conv_first`` (3 -> C), ``conv_first_feat`` (64 -> C) and
  ``conv_before_upsample`` (C -> 64) are kept so checkpoints load strictly. In the recurrent model
  the Transformer input has ``C`` channels, so ``conv_first_feat`` runs only if ``C == 64`` (as in
  the reference) and the other two never run.

Checkpoint conversion (:func:`convert_official`): BasicSR checkpoints (state dict under
``params``) use our keys. Non-tensor entries are dropped; the constant buffers (SpyNet's
``mean``/``std`` and every block's ``attn.relative_position_index``) are added when absent; the
three never-used convs of each Transformer are zero-filled when absent (the reference test
script loads with ``strict=False``, so a checkpoint without them would have worked there).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from upvid.errors import ModelInputError
from upvid.models.blocks import PASSES, Mlp, X4Head, attention, pad_clip_to
from upvid.models.flow import SpyNet, add_spynet_buffers, compute_flows, flow_warp
from upvid.models.swin import MASK_VALUE, shift_region_labels, window_partition

__all__ = [
    "PSRTRecurrent",
    "PatchAlignTransformer",
    "SwinBlock3D",
    "WindowAttention3D",
    "convert_official",
    "patch_align_warp",
]

#: The propagation passes, in the order they run.

#: The reference requires LR inputs of at least this size; smaller ones are padded.
MIN_SIZE = 64

#: Patch alignment moves square patches of this size (the attention window's height/width).
PATCH = 8

#: Logit offset between tokens of different regions in shifted windows (the reference's value).
SHIFT_MASK_VALUE = MASK_VALUE


def patch_align_warp(x: Tensor, flow: Tensor, patch: int = PATCH) -> Tensor:
    """Patch alignment: move every ``patch x patch`` patch of ``x`` by its mean flow.

    The flow is reflect-padded to a multiple of ``patch``, averaged per patch, spread back over
    the patch and cropped; ``x`` is then sampled at ``p + flow`` with nearest-neighbour sampling
    (``align_corners=True``, zeros outside), so a patch keeps its pixels intact.

    Args:
        x: ``(N, C, H, W)`` features.
        flow: ``(N, 2, H, W)`` flow in pixels ``(dx, dy)``; ``H, W >= patch`` when not multiples.
        patch: patch size.

    Returns:
        ``(N, C, H, W)`` aligned features, dtype of ``x``.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % patch, (-w) % patch
    f = flow.float()
    if ph or pw:
        f = F.pad(f, (0, pw, 0, ph), mode="reflect")
    f = F.avg_pool2d(f, patch)
    f = f.repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)[:, :, :h, :w]
    return flow_warp(x, f.permute(0, 2, 3, 1), interp_mode="nearest", padding_mode="zeros", align_corners=True)


class _WindowPlan:
    """Token gathers for one input size: padding, cyclic shift and window partition as one index.

    For a ``(T, H, W)`` token map padded to ``(D, Hp, Wp)`` (multiples of the window), ``gather[k]``
    is the flat source position ``t*H*W + h*W + w`` of window-token ``k`` (windows in (D, Hp, Wp)
    order, tokens in (d, h, w) order), or ``T*H*W`` (an appended zero token) for padding;
    ``scatter[p]`` is the window-token that holds source position ``p``. One set for plain windows,
    one for windows of the map cyclically shifted by ``-shift`` (``torch.roll`` semantics).
    ``labels`` are the region ids of the shifted windows (:func:`~upvid.models.swin.shift_region_labels`).
    """

    def __init__(self, size: tuple[int, int, int], ws: tuple[int, int, int], shift: tuple[int, int, int],
                 device: torch.device) -> None:
        t, h, w = size
        padded = tuple(n + (-n) % k for n, k in zip(size, ws))
        self.size = size
        self.padded_input = padded != tuple(size)
        self.labels = shift_region_labels(padded, ws, shift, device)
        self.num_windows = self.labels.shape[0]
        axes = [torch.arange(n, device=device) for n in padded]
        self.gather: dict[bool, Tensor] = {}
        self.scatter: dict[bool, Tensor] = {}
        for shifted in (False, True):
            dd, hh, ww = (
                (ax + (sh if shifted else 0)) % n for ax, sh, n in zip(axes, shift, padded)
            )
            src = (dd.view(-1, 1, 1) * h + hh.view(1, -1, 1)) * w + ww.view(1, 1, -1)
            valid = (dd.view(-1, 1, 1) < t) & (hh.view(1, -1, 1) < h) & (ww.view(1, 1, -1) < w)
            src = torch.where(valid, src, t * h * w)
            gather = window_partition(src[None, ..., None], ws).reshape(-1)
            keep = gather < t * h * w
            scatter = torch.empty(t * h * w, dtype=torch.long, device=device)
            scatter[gather[keep]] = torch.arange(gather.numel(), device=device)[keep]
            self.gather[shifted], self.scatter[shifted] = gather, scatter


class WindowAttention3D(nn.Module):
    """Multi-head self-attention inside 3D windows with a learned relative-position bias.

    Keys (official): ``relative_position_bias_table`` ``((2wd-1)(2wh-1)(2ww-1), heads)``, buffer
    ``relative_position_index`` ``(N, N)`` (persistent, as in the reference), ``qkv``, ``proj``.

    Args:
        dim: token channels ``C``.
        window_size: ``(wd, wh, ww)``; ``N = wd * wh * ww`` tokens per window.
        num_heads: attention heads (``C`` divisible by it).
        qkv_bias: bias of the ``qkv`` projection.
        chunk_elems: attention-matrix elements (windows x heads x N x N) per SDPA call (memory bound
            only; the result does not depend on it).
    """

    def __init__(
        self, dim: int, window_size: tuple[int, int, int], num_heads: int, qkv_bias: bool = True,
        chunk_elems: int = 1 << 25,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = tuple(window_size)
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.chunk_elems = chunk_elems
        wd, wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1), num_heads)
        )
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        # index of (d_i - d_j, h_i - h_j, w_i - w_j) in the table, row-major over the shifted offsets:
        # it splits as key_i - key_j + const with key = (d * (2wh-1) + h) * (2ww-1) + w
        d, h, w = torch.meshgrid(torch.arange(wd), torch.arange(wh), torch.arange(ww), indexing="ij")
        key = ((d * (2 * wh - 1) + h) * (2 * ww - 1) + w).flatten()  # (N,)
        const = ((wd - 1) * (2 * wh - 1) + (wh - 1)) * (2 * ww - 1) + (ww - 1)
        self.register_buffer("relative_position_index", key[:, None] - key[None, :] + const)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _bias(self) -> Tensor:
        """``(heads, N, N)`` relative-position bias."""
        n = self.relative_position_index.shape[0]
        table = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return table.view(n, n, -1).permute(2, 0, 1)

    def _attend(self, x: Tensor, mask: Tensor) -> Tensor:
        """``(n, N, C)`` windows, additive ``mask`` ``(1 or n, heads, N, N)`` -> ``(n, N, C)``, chunked."""
        bw, n, c = x.shape
        heads = self.num_heads
        step = max(1, self.chunk_elems // (heads * n * n))
        out = []
        for s in range(0, bw, step):
            q, k, v = self.qkv(x[s : s + step]).view(-1, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
            m = mask if mask.shape[0] == 1 else mask[s : s + step]
            y = attention(q, k, v, attn_mask=m.to(q.dtype), scale=self.scale)
            out.append(self.proj(y.transpose(1, 2).reshape(-1, n, c)))
        return torch.cat(out) if len(out) > 1 else out[0]

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Attend within windows.

        Args:
            x: ``(B * nW, N, C)`` window tokens, the ``nW`` windows of each batch item contiguous.
            labels: ``(nW, N)`` region ids (shifted windows) or ``None`` (no masking).

        Returns:
            ``(B * nW, N, C)``.
        """
        bias = self._bias().unsqueeze(0)  # (1, heads, N, N)
        if labels is None:
            return self._attend(x, bias)
        # Only windows that straddle a region boundary need the shift mask (zero elsewhere).
        nw = labels.shape[0]
        mixed = (labels != labels[:, :1]).any(dim=1)  # (nW,)
        if not bool(mixed.any()):
            return self._attend(x, bias)
        mixed = mixed.repeat(x.shape[0] // nw)
        sel = mixed.nonzero().squeeze(1)
        lab = labels.repeat(x.shape[0] // nw, 1)[sel]  # (n_mixed, N)
        region = (lab[:, :, None] != lab[:, None, :]).unsqueeze(1)  # (n_mixed, 1, N, N)
        out = torch.empty_like(x)
        rest = (~mixed).nonzero().squeeze(1)
        if rest.numel():
            out[rest] = self._attend(x[rest], bias)
        out[sel] = self._attend(x[sel], bias + region.to(bias.dtype) * SHIFT_MASK_VALUE)
        return out


class SwinBlock3D(nn.Module):
    """Pre-norm Swin block over ``(B, T, H, W, C)`` tokens, optionally with shifted windows.

    Keys (official): ``norm1``, ``attn.*`` (:class:`WindowAttention3D`), ``norm2``, ``mlp.fc1``,
    ``mlp.fc2``.

    Args:
        dim: channels ``C``.
        num_heads: attention heads.
        window_size: ``(wd, wh, ww)``.
        shift_size: cyclic shift ``(sd, sh, sw)``; all zero for a plain block.
        mlp_ratio: MLP hidden width / ``C``.
    """

    def __init__(
        self, dim: int, num_heads: int, window_size: tuple[int, int, int],
        shift_size: tuple[int, int, int] = (0, 0, 0), mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        self.window_size = tuple(window_size)
        self.shift_size = tuple(shift_size)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, self.window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    @property
    def shifted(self) -> bool:
        return any(s > 0 for s in self.shift_size)

    def forward(self, x: Tensor, plan: _WindowPlan) -> Tensor:
        """``(B, T, H, W, C) -> (B, T, H, W, C)``.

        Args:
            x: tokens.
            plan: the window gathers for this size (:class:`_WindowPlan`).
        """
        b, t, h, w, c = x.shape
        y = self.norm1(x).reshape(b, t * h * w, c)
        if plan.padded_input:  # zero tokens after the norm, as in the reference
            y = torch.cat([y, y.new_zeros(b, 1, c)], dim=1)
        shifted = self.shifted
        # pad + cyclic shift + window partition in one gather; the inverse is one gather too
        y = torch.index_select(y, 1, plan.gather[shifted]).view(-1, self.attn.relative_position_index.shape[0], c)
        y = self.attn(y, plan.labels if shifted else None).view(b, -1, c)
        y = torch.index_select(y, 1, plan.scatter[shifted]).view(b, t, h, w, c)
        x = x + y
        return x + self.mlp(self.norm2(x))


class _SwinStage(nn.Module):
    """Container for a residual group's blocks (official key ``residual_group.blocks.{j}``)."""

    def __init__(self, blocks: list[SwinBlock3D]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)


class _ResidualSwinGroup(nn.Module):
    """Swin blocks, a 3x3 conv per frame, and a skip (official ``RSTB``: ``residual_group``, ``conv``)."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: tuple[int, int, int], mlp_ratio: float) -> None:
        super().__init__()
        shift = (window_size[0], window_size[1] // 2, window_size[2] // 2)
        self.residual_group = _SwinStage([
            SwinBlock3D(dim, num_heads, window_size, (0, 0, 0) if j % 2 == 0 else shift, mlp_ratio)
            for j in range(depth)
        ])
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: Tensor, plan: _WindowPlan) -> Tensor:
        """``(B, T, H, W, C) -> (B, T, H, W, C)``."""
        y = x
        for blk in self.residual_group.blocks:
            y = blk(y, plan)
        b, t, h, w, c = y.shape
        y = self.conv(y.reshape(b * t, h, w, c).permute(0, 3, 1, 2))
        return x + y.permute(0, 2, 3, 1).reshape(b, t, h, w, c)


class PatchAlignTransformer(nn.Module):
    """The multi-frame Swin Transformer of one propagation pass (official ``SwinIRFM``).

    Keys (official): ``conv_first``, ``conv_first_feat`` (see the module docstring),
    ``patch_embed.norm``, ``layers.{i}.residual_group.blocks.{j}.*``, ``layers.{i}.conv``,
    ``norm``, ``conv_after_body``, ``conv_before_upsample`` (unused).

    Args:
        embed_dim: channels ``C``.
        depths: Swin blocks per residual group.
        num_heads: attention heads per residual group.
        window_size: 3D attention window ``(wd, wh, ww)``.
        mlp_ratio: MLP hidden width / ``C`` (official: 2).
        in_chans: image channels (only ``conv_first``'s shape depends on it).
        num_feat: channels of ``conv_first_feat``'s input and ``conv_before_upsample``'s output (64).
    """

    def __init__(
        self,
        embed_dim: int = 120,
        depths: tuple[int, ...] = (6, 6, 6),
        num_heads: tuple[int, ...] = (6, 6, 6),
        window_size: tuple[int, int, int] = (3, 8, 8),
        mlp_ratio: float = 2.0,
        in_chans: int = 3,
        num_feat: int = 64,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.in_chans = in_chans
        self.num_feat = num_feat
        self.window_size = tuple(window_size)
        self.shift_size = (window_size[0], window_size[1] // 2, window_size[2] // 2)
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.conv_first_feat = nn.Conv2d(num_feat, embed_dim, 3, 1, 1)
        self.patch_embed = nn.ModuleDict({"norm": nn.LayerNorm(embed_dim)})
        self.layers = nn.ModuleList([
            _ResidualSwinGroup(embed_dim, d, nh, self.window_size, mlp_ratio) for d, nh in zip(depths, num_heads)
        ])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.conv_before_upsample = nn.Conv2d(embed_dim, num_feat, 3, 1, 1)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        """Training-time init of the reference (truncated-normal linears, unit LayerNorms)."""
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Fuse a short stack of frames into the centre one.

        Args:
            x: ``(B, T, C_in, H, W)`` features (``T = 3`` in PSRT-recurrent: aligned previous,
                current, aligned second previous), ``C_in`` = ``embed_dim`` (or ``in_chans``/64,
                which first go through ``conv_first``/``conv_first_feat``).

        Returns:
            ``(B, C, H, W)``: the refined features of frame ``T // 2``.
        """
        b, t, c, h, w = x.shape
        if c in (self.in_chans, self.num_feat):  # the reference's channel-count dispatch
            conv = self.conv_first if c == self.in_chans else self.conv_first_feat
            x = conv(x.flatten(0, 1)).unflatten(0, (b, t))
        centre = x[:, t // 2]
        tokens = self.patch_embed["norm"](x.permute(0, 1, 3, 4, 2))  # (B, T, H, W, C)
        plan = _WindowPlan((t, h, w), self.window_size, self.shift_size, x.device)
        for layer in self.layers:
            tokens = layer(tokens, plan)
        feat = self.norm(tokens[:, t // 2]).permute(0, 3, 1, 2)
        return self.conv_after_body(feat) + centre


class PSRTRecurrent(X4Head):
    """PSRT-recurrent x4 (official ``BasicRecurrentSwin`` parameter names).

    Args:
        mid_channels: channels of the reconstruction convs (official: 64).
        embed_dim: Transformer channels ``C`` (official: 120).
        depths: Swin blocks per residual group (official: 6, 6, 6).
        num_heads: heads per residual group (official: 6, 6, 6).
        window_size: 3D window ``(frames, height, width)`` (official: 3, 8, 8).
        mlp_ratio: MLP width ratio (official: 2).
        flow_chunk: frame pairs per SpyNet call (memory bound only).
    """

    def __init__(
        self,
        mid_channels: int = 64,
        embed_dim: int = 120,
        depths: tuple[int, ...] | list[int] = (6, 6, 6),
        num_heads: tuple[int, ...] | list[int] = (6, 6, 6),
        window_size: tuple[int, int, int] | list[int] = (3, 8, 8),
        mlp_ratio: float = 2.0,
        flow_chunk: int = 8,
    ) -> None:
        super().__init__()
        if len(depths) != len(num_heads) or len(window_size) != 3:
            raise ValueError("depths and num_heads must have the same length; window_size is (d, h, w)")
        self.mid_channels = mid_channels
        self.embed_dim = embed_dim
        self.flow_chunk = flow_chunk
        self.spynet = SpyNet()
        self.conv_first = nn.Conv2d(3, embed_dim, 3, 1, 1)
        self.patch_align = nn.ModuleDict({
            name: PatchAlignTransformer(embed_dim, tuple(depths), tuple(num_heads), tuple(window_size), mlp_ratio)
            for name in PASSES
        })
        self.conv_before_upsample = nn.Conv2d(embed_dim, mid_channels, 3, 1, 1)
        self._build_head(mid_channels)

    def _reconstruct(self, feat: Tensor, lr: Tensor) -> Tensor:
        """``feat``: ``(B, C, H, W)``; ``lr``: ``(B, 3, H, W)`` -> ``(B, 3, 4H, 4W)``."""
        return self._upsample(self.conv_before_upsample(feat), lr)

    def forward(self, x: Tensor) -> Tensor:
        """Super-resolve a clip.

        Args:
            x: ``(B, T, 3, H, W)`` RGB in [0, 1], any ``T >= 1``, any ``H``, ``W``
                (below 64 px the frames are padded internally, see the module docstring).

        Returns:
            ``(B, T, 3, 4H, 4W)`` RGB, about [0, 1] (not clamped).

        Raises:
            ModelInputError: wrong shape.
        """
        if x.ndim != 5 or x.shape[2] != 3 or x.shape[1] < 1 or x.shape[-1] < 1 or x.shape[-2] < 1:
            raise ModelInputError(f"PSRT-recurrent: expected (B, T, 3, H, W), got {tuple(x.shape)}")
        b, t, _, h, w = x.shape
        if h < MIN_SIZE or w < MIN_SIZE:
            y = self.forward(pad_clip_to(x, max(h, MIN_SIZE), max(w, MIN_SIZE)))
            return y[..., : 4 * h, : 4 * w]

        feats: list[Tensor | None] = list(self.conv_first(x.flatten(0, 1)).unflatten(0, (b, t)).unbind(1))
        flows = compute_flows(self.spynet, x, chunk=self.flow_chunk) if t > 1 else (None, None)
        outputs: list[Tensor] = []
        for name in PASSES:
            feats = self._propagate(name, feats, flows, x, outputs)
        return torch.stack(outputs, dim=1)

    def _propagate(self, name: str, feats: list[Tensor | None], flows: tuple[Tensor | None, Tensor | None],
                   x: Tensor, outputs: list[Tensor]) -> list[Tensor | None]:
        """One pass of second-order propagation with patch alignment (``backward_1`` ... ``forward_2``).

        Args:
            name: the pass.
            feats: the previous pass's per-frame ``(B, C, H, W)`` features (consumed: entries released).
            flows: ``(forward, backward)`` flows ``(B, T-1, 2, H, W)`` (``None`` for a one-frame clip).
            x: the ``(B, T, 3, H, W)`` LR clip (for the reconstruction's bilinear base).
            outputs: the last pass appends each frame's ``(B, 3, 4H, 4W)`` reconstruction here, in order.

        Returns:
            This pass's per-frame features (the last pass: all ``None``).
        """
        t = x.shape[1]
        flows_fwd, flows_bwd = flows
        backward = name.startswith("backward")
        last = name == PASSES[-1]
        net = self.patch_align[name]
        order = range(t - 1, -1, -1) if backward else range(t)
        result: list[Tensor | None] = [None] * t
        prop = prev2 = None  # this pass's outputs one and two steps back
        for step, idx in enumerate(order):
            current = feats[idx]
            if step == 0:
                stack = [current, current, current]
            else:
                # flow from frame idx to the previous step's frame, and that frame's own step flow
                flow_1 = flows_bwd[:, idx] if backward else flows_fwd[:, idx - 1]
                cond_1 = patch_align_warp(prop, flow_1)
                if step > 1:
                    step_flow = flows_bwd[:, idx + 1] if backward else flows_fwd[:, idx - 2]
                    flow_2 = flow_1 + flow_warp(step_flow, flow_1.permute(0, 2, 3, 1))
                    cond_2 = patch_align_warp(prev2, flow_2)
                else:
                    cond_2 = torch.zeros_like(cond_1)
                stack = [cond_1, current, cond_2.to(current.dtype)]
            new = net(torch.stack([s.to(current.dtype) for s in stack], dim=1))
            prev2, prop = prop, new
            feats[idx] = None  # the previous pass's feature of this frame is no longer needed
            if last:
                outputs.append(self._reconstruct(new, x[:, idx]))
            else:
                result[idx] = new
        return result


def _official_buffers(net: PSRTRecurrent) -> dict[str, Tensor]:
    return {k: v for k, v in net.state_dict().items() if k.endswith("relative_position_index")}


#: Per-Transformer convs that the recurrent model never runs (zero-filled when a checkpoint lacks them).
_UNUSED = ("conv_first", "conv_first_feat", "conv_before_upsample")


def convert_official(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official ``BasicRecurrentSwin`` state dict (unwrapped from ``params``) -> ours.

    Keys are identical. Non-tensor entries are dropped; SpyNet's ``mean``/``std`` and the
    ``attn.relative_position_index`` buffers (constants of the window size) are added when
    absent; the unused ``patch_align.<pass>.{conv_first,conv_first_feat,conv_before_upsample}``
    are zero-filled when absent.

    Args:
        state_dict: official keys and tensors. The network configuration (depths, window size)
            is read from the keys and shapes.

    Returns:
        A new dict that loads strictly into :class:`PSRTRecurrent` of that configuration.
    """
    out = {k: v for k, v in state_dict.items() if isinstance(v, Tensor)}
    out = add_spynet_buffers(out)
    for key, value in list(out.items()):
        # relative_position_index follows from the bias table's block; derive the window from a sibling
        if key.endswith(".attn.relative_position_bias_table"):
            idx_key = key.replace("relative_position_bias_table", "relative_position_index")
            if idx_key not in out:
                out[idx_key] = _relative_index_for(value.shape[0], out, key)
    embed = out["conv_first.weight"].shape[0] if "conv_first.weight" in out else None
    if embed is not None:
        shapes = {
            "conv_first": (embed, 3, 3, 3),
            "conv_first_feat": (embed, 64, 3, 3),
            "conv_before_upsample": (64, embed, 3, 3),
        }
        for name in PASSES:
            for conv in _UNUSED:
                wkey = f"patch_align.{name}.{conv}.weight"
                if wkey not in out and any(k.startswith(f"patch_align.{name}.") for k in out):
                    out[wkey] = torch.zeros(shapes[conv])
                    out[f"patch_align.{name}.{conv}.bias"] = torch.zeros(shapes[conv][0])
    return out


def _relative_index_for(table_len: int, state_dict: dict[str, Tensor], key: str) -> Tensor:
    """The ``(N, N)`` relative-position index of a window whose bias table has ``table_len`` rows.

    The window is taken as ``(wd, wh, wh)`` with ``wh = ww``; ``wd`` and ``wh`` are solved from
    the table length ``(2wd-1)(2wh-1)^2`` (the official model: (3, 8, 8), 1125 rows).
    """
    for wh in range(1, 65):
        side = (2 * wh - 1) ** 2
        if table_len % side == 0 and (table_len // side) % 2 == 1:
            wd = (table_len // side + 1) // 2
            if wd <= wh:
                heads = state_dict[key].shape[1]
                return WindowAttention3D(heads, (wd, wh, wh), heads).relative_position_index.clone()
    raise ValueError(f"{key}: cannot infer the window size from a bias table of {table_len} rows")
