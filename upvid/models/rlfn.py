"""RLFN: Residual Local Feature Network, winner of the NTIRE 2022 efficient SR challenge (runtime track).

Paper: Kong et al., "Residual Local Feature Network for Efficient Super-Resolution",
CVPRW 2022 (NTIRE 2022 ESR challenge, team 04 "ByteESR").
Official code: https://github.com/ofsoundof/NTIRE2022_ESR (``models/team04_rlfn.py``,
``RLFN_cut``; checkpoint ``model_zoo/team04_rlfn.pth``), MIT licence. This file is an
independent reimplementation with the same numerics.

Network (``RLFN_cut``, nf=46, mf=48, x4): a 3x3 feature conv, four residual local feature
blocks (three 3x3 convs with LeakyReLU(0.05) plus a skip, a 1x1 conv, then an enhanced
spatial attention gate), a 3x3 conv with a long skip, and a 3x3 conv + pixel shuffle.
The challenge model takes RGB in [0, 255] (``data_range = 255`` in ``test_demo.py``), so
its record sets ``input_range = 255.0``.

The attention gate (ESA) reduces the features with an unpadded stride-2 3x3 conv and a
7x7/3 max-pool; inputs below 15 LR pixels on a side are replicate-padded to 15 and the
output cropped back (the official network fails on them).

Key conversion: none, the official plain state dict already uses our names
(``fea_conv``, ``B1``..``B4`` with ``c1_r``, ``c2_r``, ``c3_r``, ``c5``,
``esa.{conv1,conv_f,conv2,conv3,conv4}``, ``LR_conv``, ``upsampler.0``).
:func:`convert_official` only checks the key set.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from upvid.errors import ModelInputError

#: smallest LR side the attention gate's stride-2 conv + 7x7/3 max-pool accepts
MIN_SIZE = 15


class ESA(nn.Module):
    """Enhanced spatial attention: a sigmoid gate computed on a strided, max-pooled copy.

    Args:
        channels: feature channels gated.
        reduced: channels inside the gate.
    """

    def __init__(self, channels: int, reduced: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, reduced, 1)
        self.conv_f = nn.Conv2d(reduced, reduced, 1)
        self.conv2 = nn.Conv2d(reduced, reduced, 3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(reduced, reduced, 3, padding=1)
        self.conv4 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, C, H, W)``, ``x`` times a gate in (0, 1); H, W >= 15."""
        squeezed = self.conv1(x)
        low = self.conv3(F.max_pool2d(self.conv2(squeezed), kernel_size=7, stride=3))
        low = F.interpolate(low, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * self.conv4(low + self.conv_f(squeezed)).sigmoid()


class RLFB(nn.Module):
    """Residual local feature block: three 3x3 convs + skip, a 1x1 conv, ESA.

    Args:
        channels: block input/output channels (nf).
        mid_channels: width of the three 3x3 convs (mf).
        esa_channels: width inside the attention gate.
    """

    def __init__(self, channels: int, mid_channels: int, esa_channels: int = 16) -> None:
        super().__init__()
        self.c1_r = nn.Conv2d(channels, mid_channels, 3, padding=1)
        self.c2_r = nn.Conv2d(mid_channels, mid_channels, 3, padding=1)
        self.c3_r = nn.Conv2d(mid_channels, channels, 3, padding=1)
        self.c5 = nn.Conv2d(channels, channels, 1)
        self.esa = ESA(channels, esa_channels)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, C, H, W)``."""
        y = x
        for conv in (self.c1_r, self.c2_r, self.c3_r):
            y = F.leaky_relu(conv(y), 0.05)
        return self.esa(self.c5(y + x))


class RLFN(nn.Module):
    """RLFN (the ``RLFN_cut`` challenge variant): per-frame x``upscale`` SR.

    Args:
        in_nc: input channels.
        out_nc: output channels.
        nf: feature channels.
        mf: width of the 3x3 convs inside each block.
        upscale: integer upscaling factor.
        num_blocks: residual local feature blocks (4 in the challenge model).
    """

    def __init__(self, in_nc: int = 3, out_nc: int = 3, nf: int = 46, mf: int = 48, upscale: int = 4,
                 num_blocks: int = 4) -> None:
        super().__init__()
        self.in_nc = in_nc
        self.upscale = upscale
        self.num_blocks = num_blocks
        self.fea_conv = nn.Conv2d(in_nc, nf, 3, padding=1)
        for i in range(num_blocks):
            self.add_module(f"B{i + 1}", RLFB(nf, mf))
        self.LR_conv = nn.Conv2d(nf, nf, 3, padding=1)
        self.upsampler = nn.Sequential(nn.Conv2d(nf, out_nc * upscale * upscale, 3, padding=1), nn.PixelShuffle(upscale))

    def forward(self, x: Tensor) -> Tensor:
        """Upscale one frame.

        Args:
            x: ``(B, in_nc, H, W)`` float RGB in [0, 255] (the challenge model's range).

        Returns:
            ``(B, out_nc, s*H, s*W)`` in about [0, 255] (not clamped).

        Raises:
            ModelInputError: wrong rank or channel count.
        """
        if x.ndim != 4 or x.shape[1] != self.in_nc:
            raise ModelInputError(f"RLFN: expected (B, {self.in_nc}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        ph, pw = max(0, MIN_SIZE - h), max(0, MIN_SIZE - w)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        shallow = self.fea_conv(x)
        deep = shallow
        for i in range(self.num_blocks):
            deep = getattr(self, f"B{i + 1}")(deep)
        out = self.upsampler(self.LR_conv(deep) + shallow)
        s = self.upscale
        return out[..., : h * s, : w * s]


def convert_official(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official ``RLFN_cut`` state dict -> ours (identical names).

    Args:
        state_dict: the plain checkpoint (``team04_rlfn.pth`` has no wrapper key).

    Returns:
        The same tensors (a new dict).

    Raises:
        ValueError: if a key does not belong to RLFN.
    """
    roots = ("fea_conv.", "LR_conv.", "upsampler.0.")
    bad = [k for k in state_dict if not (k.startswith(roots) or (k[:1] == "B" and k[1:2].isdigit()))]
    if bad:
        raise ValueError(f"not an RLFN checkpoint: unexpected keys {bad[:5]}")
    return dict(state_dict)
