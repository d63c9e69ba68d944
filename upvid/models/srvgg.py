"""SRVGGNetCompact: the compact VGG-style per-frame network of Real-ESRGAN's video models.

Paper: Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure
Synthetic Data", ICCVW 2021 (the compact network ships with the ``realesr-animevideov3``
anime-video model, Real-ESRGAN release v0.2.5.0).
Official code: https://github.com/xinntao/Real-ESRGAN (``realesrgan/archs/srvgg_arch.py``),
BSD-3-Clause. This file is an independent reimplementation with the same numerics.

Network: ``num_conv + 2`` 3x3 convolutions at LR resolution separated by activations
(per-channel PReLU by default), the last one producing ``3 * scale**2`` channels that are
pixel-shuffled to HR; the nearest-neighbour upsampled input is added as the residual base.

Key conversion: none. The official checkpoint (``{"params": state_dict}``) already uses our
names: ``body.{2k}.weight/bias`` for the k-th convolution and ``body.{2k+1}.weight`` for the
PReLU after it (ReLU/LeakyReLU variants have no parameters). :func:`convert_official` only
checks the key set.
"""

from __future__ import annotations

import itertools

from torch import Tensor, nn
from torch.nn import functional as F

from upvid.errors import ModelInputError


def _activation(kind: str, channels: int) -> nn.Module:
    if kind == "prelu":
        return nn.PReLU(num_parameters=channels)
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)
    raise ValueError(f"unknown activation {kind!r} (prelu, relu, leakyrelu)")


class SRVGGNetCompact(nn.Module):
    """Compact VGG-style single-image SR network (all convolutions at LR resolution).

    Args:
        num_in_ch: input channels.
        num_out_ch: output channels.
        num_feat: feature width.
        num_conv: convolutions between the first and the last one.
        upscale: integer upscaling factor.
        act_type: ``"prelu"`` (per channel), ``"relu"`` or ``"leakyrelu"`` (slope 0.1).
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
    ) -> None:
        super().__init__()
        self.upscale = upscale
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        layers: list[nn.Module] = []
        widths = [num_in_ch] + [num_feat] * (num_conv + 1)
        for cin, cout in itertools.pairwise(widths):
            layers += [nn.Conv2d(cin, cout, 3, 1, 1), _activation(act_type, cout)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: Tensor) -> Tensor:
        """Upscale one frame.

        Args:
            x: ``(B, num_in_ch, H, W)`` float RGB in [0, 1].

        Returns:
            ``(B, num_out_ch, s*H, s*W)``, about [0, 1] (not clamped).

        Raises:
            ModelInputError: wrong rank or channel count.
        """
        if x.ndim != 4 or x.shape[1] != self.num_in_ch:
            raise ModelInputError(f"SRVGGNetCompact: expected (B, {self.num_in_ch}, H, W), got {tuple(x.shape)}")
        feat = x
        for layer in self.body:
            feat = layer(feat)
        out = self.upsampler(feat)
        # the network learns the residual over the nearest-neighbour upsampled input
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


def convert_official(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official Real-ESRGAN ``SRVGGNetCompact`` keys -> ours (identical names).

    Args:
        state_dict: the checkpoint unwrapped from ``params``.

    Returns:
        The same tensors (a new dict).

    Raises:
        ValueError: if a key is not of the ``body.N.(weight|bias)`` form.
    """
    bad = [k for k in state_dict if not (k.startswith("body.") and k.rsplit(".", 1)[-1] in ("weight", "bias"))]
    if bad:
        raise ValueError(f"not an SRVGGNetCompact checkpoint: unexpected keys {bad[:5]}")
    return dict(state_dict)
