"""Building blocks shared by the VSR architectures.

Each block keeps the parameter names of the official code it comes from, so that
state dicts of architectures built from it load with at most a documented key rename.

- :func:`flow_warp`, :class:`ResidualBlockNoBN`, :func:`make_layer`,
  :class:`SpyNet`: BasicSR (XPixelGroup/BasicSR, ``basicsr/archs/arch_util.py`` and
  ``spynet_arch.py``); SpyNet is Ranjan & Black, "Optical Flow Estimation using a
  Spatial Pyramid Network", CVPR 2017.
- :class:`ResidualBlocksWithInputConv`: BasicVSR/BasicVSR++ (Chan et al., CVPR 2021/2022).
- :class:`PixelShufflePack`: mmagic/mmedit's sub-pixel upsampler.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = [
    "flow_warp",
    "make_layer",
    "ResidualBlockNoBN",
    "ResidualBlocksWithInputConv",
    "PixelShufflePack",
    "SpyNet",
]


def flow_warp(
    x: Tensor,
    flow: Tensor,
    interp_mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = True,
) -> Tensor:
    """Backward-warp an image or feature map with an optical flow.

    Args:
        x: ``(N, C, H, W)`` float tensor to sample from.
        flow: ``(N, H, W, 2)`` float tensor, displacement in pixels, last dim ``(dx, dy)``.
        interp_mode: ``grid_sample`` mode, ``"bilinear"`` or ``"nearest"``.
        padding_mode: ``grid_sample`` padding, ``"zeros"``, ``"border"`` or ``"reflection"``.
        align_corners: passed to ``grid_sample`` (the official code uses ``True``).

    Returns:
        ``(N, C, H, W)`` warped tensor, same dtype as ``x``.

    Raises:
        ValueError: if the spatial sizes of ``x`` and ``flow`` differ.
    """
    if x.shape[-2:] != flow.shape[1:3]:
        raise ValueError(f"flow_warp: x is {tuple(x.shape[-2:])} but flow is {tuple(flow.shape[1:3])}")
    _, _, h, w = x.shape
    # Sampling grids stay in fp32 even under autocast: sub-pixel positions need the precision.
    grid_y, grid_x = torch.meshgrid(
        torch.arange(0, h, device=x.device, dtype=torch.float32),
        torch.arange(0, w, device=x.device, dtype=torch.float32),
        indexing="ij",
    )
    grid = torch.stack((grid_x, grid_y), 2)  # (H, W, 2)
    vgrid = grid + flow.float()
    vgrid_x = 2.0 * vgrid[..., 0] / max(w - 1, 1) - 1.0
    vgrid_y = 2.0 * vgrid[..., 1] / max(h - 1, 1) - 1.0
    vgrid_scaled = torch.stack((vgrid_x, vgrid_y), dim=3)
    out = F.grid_sample(
        x.float(), vgrid_scaled, mode=interp_mode, padding_mode=padding_mode, align_corners=align_corners
    )
    return out.to(x.dtype)


def make_layer(block: type[nn.Module], num_blocks: int, **kwargs) -> nn.Sequential:
    """Stack ``num_blocks`` instances of ``block(**kwargs)`` in an ``nn.Sequential``."""
    return nn.Sequential(*[block(**kwargs) for _ in range(num_blocks)])


class ResidualBlockNoBN(nn.Module):
    """``x + res_scale * conv2(relu(conv1(x)))``, no batch norm (EDSR-style).

    Parameter names ``conv1``/``conv2`` follow BasicSR.

    Args:
        num_feat: channels ``C``.
        res_scale: residual scale.
    """

    def __init__(self, num_feat: int = 64, res_scale: float = 1.0) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=True)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W) -> (N, C, H, W)``."""
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


class ResidualBlocksWithInputConv(nn.Module):
    """Conv(in->out) + LeakyReLU(0.1) + ``num_blocks`` residual blocks (BasicVSR).

    Parameter names: ``main.0`` (input conv), ``main.2.{i}.conv1/conv2``.

    Args:
        in_channels: input channels.
        out_channels: output channels ``C``.
        num_blocks: number of :class:`ResidualBlockNoBN`.
    """

    def __init__(self, in_channels: int, out_channels: int = 64, num_blocks: int = 30) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=True),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            make_layer(ResidualBlockNoBN, num_blocks, num_feat=out_channels),
        )

    def forward(self, feat: Tensor) -> Tensor:
        """``(N, in_channels, H, W) -> (N, out_channels, H, W)``."""
        return self.main(feat)


class PixelShufflePack(nn.Module):
    """Conv to ``out_channels * factor**2`` then ``PixelShuffle(factor)`` (mmedit naming: ``upsample_conv``).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        scale_factor: upsampling factor.
        upsample_kernel: conv kernel size.
    """

    def __init__(self, in_channels: int, out_channels: int, scale_factor: int, upsample_kernel: int) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.upsample_conv = nn.Conv2d(
            in_channels, out_channels * scale_factor * scale_factor, upsample_kernel,
            padding=(upsample_kernel - 1) // 2,
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in, H, W) -> (N, out, H*f, W*f)``."""
        return F.pixel_shuffle(self.upsample_conv(x), self.scale_factor)


class Mlp(nn.Module):
    """Transformer feed-forward ``fc2(gelu(fc1(x)))`` on ``(..., dim)`` tokens (Swin; keys ``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def attention(q: Tensor, k: Tensor, v: Tensor, *, scale: float, attn_mask: Tensor | None = None,
              head_multiple: int | None = None) -> Tensor:
    """``F.scaled_dot_product_attention`` with the head dim padded for the fused CUDA kernels.

    The fused (flash / memory-efficient) kernels want the head dim ``d`` to be a multiple of 8;
    Swin models with ``embed_dim / heads = 20`` (IART, PSRT) would fall back to the unfused
    kernel. Zero-padding ``q``, ``k`` and ``v`` to the next multiple leaves every dot product
    unchanged; ``scale`` is passed explicitly (``d**-0.5`` of the true ``d``) and the padded
    output channels are dropped, so the result equals the unpadded attention.

    Args:
        q, k, v: ``(..., L, d)`` queries ``(L = Lq)``, keys and values ``(L = Lk)``.
        scale: softmax scale (the model's, usually ``d**-0.5``).
        attn_mask: additive ``(..., Lq, Lk)`` mask/bias, broadcastable.
        head_multiple: pad ``d`` up to a multiple of this; default 8 on CUDA, none elsewhere
            (on CPU padding only adds work).

    Returns:
        ``(..., Lq, d)``.
    """
    d = q.shape[-1]
    mult = head_multiple if head_multiple is not None else (8 if q.is_cuda else 1)
    pad = (-d) % mult
    if pad:
        q, k, v = (F.pad(t, (0, pad)) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)
    return out[..., :d] if pad else out


def pad_clip_to(x: Tensor, h: int, w: int) -> Tensor:
    """Pad a clip ``(B, T, C, H0, W0)`` bottom/right to ``(B, T, C, h, w)``: reflect where it can, then replicate.

    For networks with a minimum input size (BasicVSR++ and PSRT's SpyNet pyramid); the caller
    crops the output back.
    """
    b, t = x.shape[:2]
    y = x.flatten(0, 1)
    while y.shape[-2] < h or y.shape[-1] < w:
        ph, pw = min(h - y.shape[-2], y.shape[-2] - 1), min(w - y.shape[-1], y.shape[-1] - 1)
        if ph <= 0 and pw <= 0:  # a 1-px side cannot reflect
            y = F.pad(y, (0, w - y.shape[-1], 0, h - y.shape[-2]), mode="replicate")
            break
        y = F.pad(y, (0, max(pw, 0), 0, max(ph, 0)), mode="reflect")
    return y.unflatten(0, (b, t))


class _SpyNetBasicModule(nn.Module):
    """One pyramid level of SpyNet: 5 convs 7x7 (8->32->64->32->16->2) with ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.basic_module = nn.Sequential(
            nn.Conv2d(8, 32, 7, 1, 3), nn.ReLU(inplace=False),
            nn.Conv2d(32, 64, 7, 1, 3), nn.ReLU(inplace=False),
            nn.Conv2d(64, 32, 7, 1, 3), nn.ReLU(inplace=False),
            nn.Conv2d(32, 16, 7, 1, 3), nn.ReLU(inplace=False),
            nn.Conv2d(16, 2, 7, 1, 3),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.basic_module(x)


class SpyNet(nn.Module):
    """SpyNet optical flow (Ranjan & Black, CVPR 2017), BasicSR's port and key names.

    Keys: ``basic_module.{0..5}.basic_module.{0,2,4,6,8}.{weight,bias}``, buffers ``mean``, ``std``.
    The mmedit/mmagic SPyNet (BasicVSR++ checkpoints) differs only by a ``.conv`` infix; see
    :func:`convert_mmedit_spynet_keys`.

    Input frames are RGB in [0, 1]; the flow is computed on a grid padded up to a multiple of 32
    (bilinear resize) and resized back, as in the official code.
    """

    def __init__(self) -> None:
        super().__init__()
        self.basic_module = nn.ModuleList([_SpyNetBasicModule() for _ in range(6)])
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def _process(self, ref: Tensor, supp: Tensor) -> Tensor:
        ref_pyr = [(ref - self.mean) / self.std]
        supp_pyr = [(supp - self.mean) / self.std]
        for _ in range(5):
            ref_pyr.insert(0, F.avg_pool2d(ref_pyr[0], kernel_size=2, stride=2, count_include_pad=False))
            supp_pyr.insert(0, F.avg_pool2d(supp_pyr[0], kernel_size=2, stride=2, count_include_pad=False))
        n, _, h0, w0 = ref_pyr[0].shape
        # The coarsest level starts from a zero flow of its own size. (BasicSR upsamples a zero
        # (h0//2, w0//2) flow: the same zeros, but that fails for a 1-pixel level, i.e. inputs <= 32 px.)
        flow = ref_pyr[0].new_zeros([n, 2, h0, w0])
        for level in range(len(ref_pyr)):
            up = flow if level == 0 else F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
            if up.size(2) != ref_pyr[level].size(2):
                up = F.pad(up, [0, 0, 0, 1], mode="replicate")
            if up.size(3) != ref_pyr[level].size(3):
                up = F.pad(up, [0, 1, 0, 0], mode="replicate")
            warped = flow_warp(supp_pyr[level], up.permute(0, 2, 3, 1), interp_mode="bilinear", padding_mode="border")
            flow = self.basic_module[level](torch.cat([ref_pyr[level], warped, up], 1)) + up
        return flow

    def forward(self, ref: Tensor, supp: Tensor) -> Tensor:
        """Flow from ``ref`` to ``supp`` (warping ``supp`` with it aligns it to ``ref``).

        Args:
            ref: ``(N, 3, H, W)`` RGB in [0, 1].
            supp: ``(N, 3, H, W)`` RGB in [0, 1].

        Returns:
            ``(N, 2, H, W)`` float flow in pixels (``dx``, ``dy``).

        Raises:
            ValueError: if ``ref`` and ``supp`` differ in shape.
        """
        if ref.shape != supp.shape:
            raise ValueError(f"SpyNet: ref {tuple(ref.shape)} and supp {tuple(supp.shape)} differ")
        if torch.is_autocast_enabled(ref.device.type):  # flows stay fp32 under mixed precision
            with torch.autocast(ref.device.type, enabled=False):
                return self.forward(ref.float(), supp.float())
        h, w = ref.shape[-2:]
        w_up = math.floor(math.ceil(w / 32.0) * 32.0)
        h_up = math.floor(math.ceil(h / 32.0) * 32.0)
        ref = F.interpolate(ref, size=(h_up, w_up), mode="bilinear", align_corners=False)
        supp = F.interpolate(supp, size=(h_up, w_up), mode="bilinear", align_corners=False)
        flow = F.interpolate(self._process(ref, supp), size=(h, w), mode="bilinear", align_corners=False)
        scale = torch.tensor([w / w_up, h / h_up], dtype=flow.dtype, device=flow.device).view(1, 2, 1, 1)
        return flow * scale


def convert_mmedit_spynet_keys(state_dict: dict[str, Tensor], prefix: str = "spynet.") -> dict[str, Tensor]:
    """Rename mmedit/mmagic SPyNet keys (``...basic_module.{j}.conv.weight``) to BasicSR's.

    Args:
        state_dict: any state dict; only keys starting with ``prefix`` are touched.
        prefix: where the SpyNet lives in the state dict.

    Returns:
        A new dict with ``basic_module.{i}.basic_module.{j}.conv.{weight,bias}`` mapped to
        ``basic_module.{i}.basic_module.{2j}.{weight,bias}`` (mmedit's ConvModule numbers
        only convs; BasicSR's Sequential interleaves ReLUs).
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith(prefix) and ".conv." in key:
            head, tail = key[len(prefix):].split(".conv.")
            parts = head.split(".")  # basic_module, i, basic_module, j
            if len(parts) == 4 and parts[0] == parts[2] == "basic_module":
                key = f"{prefix}basic_module.{parts[1]}.basic_module.{int(parts[3]) * 2}.{tail}"
        out[key] = value
    return out
