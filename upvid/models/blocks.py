"""Building blocks shared by the VSR architectures.

Each block keeps the parameter names of the official code it comes from, so that
state dicts of architectures built from it load with at most a documented key rename.

- :class:`ResidualBlockNoBN`, :func:`make_layer`: BasicSR (XPixelGroup/BasicSR,
  ``basicsr/archs/arch_util.py``). Optical flow (SpyNet, warping) is in :mod:`upvid.models.flow`,
  Swin windows in :mod:`upvid.models.swin`.
- :class:`ResidualBlocksWithInputConv`: BasicVSR/BasicVSR++ (Chan et al., CVPR 2021/2022).
- :class:`PixelShufflePack`: mmagic/mmedit's sub-pixel upsampler.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

__all__ = [
    "PASSES",
    "X4Head",
    "make_layer",
    "ResidualBlockNoBN",
    "ResidualBlocksWithInputConv",
    "PixelShufflePack",
]

#: The four passes of second-order grid propagation (BasicVSR++, Chan et al., CVPR 2022), in the
#: order they run; also the key names of each pass's modules (``backbone.backward_1``, ...) in
#: BasicVSR++, IART, PSRT and RVRT.
PASSES: tuple[str, ...] = ("backward_1", "forward_1", "backward_2", "forward_2")


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


def _leaky(x: Tensor) -> Tensor:
    return F.leaky_relu(x, negative_slope=0.1)


class X4Head(nn.Module):
    """Mixin: the x4 reconstruction head of EDVR/BasicVSR/IconVSR/IART/PSRT (BasicSR names, at top level).

    ``upconv1`` (C -> 4C) + shuffle, ``upconv2`` (C -> 256) + shuffle, ``conv_hr`` (64 -> 64),
    ``conv_last`` (64 -> 3), LeakyReLU(0.1) between, plus the bilinear x4 upsampling of the LR frame.
    """

    def _build_head(self, num_feat: int) -> None:
        self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1, bias=True)
        self.upconv2 = nn.Conv2d(num_feat, 64 * 4, 3, 1, 1, bias=True)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)

    def _upsample(self, feat: Tensor, lr: Tensor) -> Tensor:
        """``(N, C, H, W)`` features + ``(N, 3, H, W)`` LR frame -> ``(N, 3, 4H, 4W)``."""
        out = _leaky(F.pixel_shuffle(self.upconv1(feat), 2))
        out = _leaky(F.pixel_shuffle(self.upconv2(out), 2))
        out = self.conv_last(_leaky(self.conv_hr(out)))
        return out + F.interpolate(lr, scale_factor=4, mode="bilinear", align_corners=False)


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
