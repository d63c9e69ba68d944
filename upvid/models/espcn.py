"""ESPCN: efficient sub-pixel convolutional network (luma only).

Paper: Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network", CVPR 2016.
Implementation and checkpoint followed here: Thmen/EGVSR, https://github.com/Thmen/EGVSR
(``codes/models/networks/espcn_nets.py``, ``ESPNet(scale=4, in_nc=1, out_nc=1,
up_method='subconv')``; checkpoint ``pretrained_models/espcn_x4_subconv_100.pth``, listed
under EGVSR's BD experiments), MIT licence. This file is an independent reimplementation
with the same numerics.

Network: 5x5 conv (64) -> 3x3 conv (32) -> 3x3 conv (32), tanh after each, a 1x1 conv to
``scale**2`` channels, pixel shuffle, sigmoid. One channel in [0, 1]: the record sets
``channels = "y"`` so the :class:`~upvid.models.upscaler.Upscaler` feeds BT.601 luma and
upsamples chroma bicubically.

Key conversion (:func:`convert_official`): names are unchanged; the checkpoint also carries
the unused alternative upsamplers of the official class (``reconv.*``, ``deconv.*``, 834
parameters), which are dropped.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from upvid.errors import ModelInputError


class ESPCN(nn.Module):
    """ESPCN with a sub-pixel (pixel-shuffle) output layer.

    Args:
        scale: upscaling factor.
        in_nc: input channels (1: luma).
        out_nc: output channels (must equal 1 for the sub-pixel layer, as in the official code).
    """

    def __init__(self, scale: int = 4, in_nc: int = 1, out_nc: int = 1) -> None:
        super().__init__()
        if out_nc != 1:
            raise ValueError("the sub-pixel ESPCN produces one channel")
        self.scale = scale
        self.in_nc = in_nc
        self.conv1 = nn.Conv2d(in_nc, 64, 5, 1, 2)
        self.conv2 = nn.Conv2d(64, 32, 3, 1, 1)
        self.conv3 = nn.Conv2d(32, 32, 3, 1, 1)
        self.pwconv = nn.Conv2d(32, scale * scale, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Upscale one frame.

        Args:
            x: ``(B, in_nc, H, W)`` float luma in [0, 1].

        Returns:
            ``(B, 1, s*H, s*W)`` in (0, 1) (sigmoid output).

        Raises:
            ModelInputError: wrong rank or channel count.
        """
        if x.ndim != 4 or x.shape[1] != self.in_nc:
            raise ModelInputError(f"ESPCN: expected (B, {self.in_nc}, H, W), got {tuple(x.shape)}")
        for conv in (self.conv1, self.conv2, self.conv3):
            x = torch.tanh(conv(x))
        return torch.sigmoid(F.pixel_shuffle(self.pwconv(x), self.scale))


def convert_official(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """EGVSR ``ESPNet`` state dict -> ours: same names, the unused ``reconv``/``deconv`` dropped.

    Raises:
        ValueError: on a key that is not part of ESPNet.
    """
    keep = ("conv1.", "conv2.", "conv3.", "pwconv.")
    unused = ("reconv.", "deconv.")
    bad = [k for k in state_dict if not k.startswith(keep + unused)]
    if bad:
        raise ValueError(f"not an ESPNet checkpoint: unexpected keys {bad[:5]}")
    return {k: v for k, v in state_dict.items() if k.startswith(keep)}
