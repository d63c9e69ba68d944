"""YUV 4:2:0 <-> RGB in the engine (on the compute device).

The decoder hands the engine the raw 4:2:0 planes of each LR frame (:class:`upvid.frames.Yuv420`,
8 or 10 bits) and the engine hands the encoder 4:2:0 planes of each HR frame. The colour
conversions, chroma resampling and integer <-> float conversions run in torch, on the GPU
when there is one (half as many bytes cross the PCIe bus), on the CPU otherwise.

Out-of-gamut values are kept, not clipped: Y above 235 ("superwhite", common in camera
footage) or saturated chroma give RGB outside [0, 1], which the model sees as it is and the
way back turns into the same codes. Clipping them on the way in (as libswscale's RGB output
does) darkens such clips by up to several levels (issue 14: -2.8 mean luma on realshort).

Conventions (ITU-R BT.601/709/2020 and FFmpeg's):

- Matrix from the stream's ``AVColorSpace`` code (:data:`KR_KB`); unspecified -> BT.601, as
  libswscale assumes.
- Limited ("MPEG", tv) range: Y in [16, 235], Cb/Cr in [16, 240] (times 4 at 10 bits); full
  ("JPEG", pc) range: Y in [0, 2^b - 1], Cb/Cr centred on 2^(b-1).
- 4:2:0 chroma siting "left" (MPEG-2/H.264 default): chroma samples are co-sited with even
  luma columns and sit halfway between luma rows. Upsampling interpolates linearly at those
  positions; downsampling is the matching ``[1, 2, 1] / 4`` filter horizontally and a
  2-row mean vertically.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

#: ``AVColorSpace`` code -> (Kr, Kb). 2 (unspecified) and anything unknown -> BT.601.
KR_KB: dict[int, tuple[float, float]] = {
    1: (0.2126, 0.0722),  # BT.709
    4: (0.30, 0.11),  # FCC
    5: (0.299, 0.114),  # BT.470BG (BT.601 625)
    6: (0.299, 0.114),  # SMPTE 170M (BT.601 525)
    7: (0.212, 0.087),  # SMPTE 240M
    9: (0.2627, 0.0593),  # BT.2020 non-constant luminance
    10: (0.2627, 0.0593),  # BT.2020 constant luminance (treated as NCL)
}


def _coeffs(colorspace: int) -> tuple[float, float, float]:
    kr, kb = KR_KB.get(int(colorspace), (0.299, 0.114))
    return kr, 1.0 - kr - kb, kb


def _levels(full_range: bool, bits: int) -> tuple[float, float, float, float]:
    """``(y_offset, y_scale, c_offset, c_scale)`` of the integer codes at ``bits``."""
    s = float(1 << (bits - 8))
    if full_range:
        peak = float((1 << bits) - 1)
        return 0.0, peak, 128.0 * s, peak
    return 16.0 * s, 219.0 * s, 128.0 * s, 224.0 * s


def _upsample_chroma(c: Tensor, height: int, width: int) -> Tensor:
    """``(T, 1, h, w)`` chroma -> ``(T, 1, height, width)`` (left siting, linear)."""
    # vertical: chroma row i sits at luma row 2i + 0.5 -> rows 2i, 2i+1 take 3/4 of their own
    prev = torch.cat((c[:, :, :1], c[:, :, :-1]), 2)
    nxt = torch.cat((c[:, :, 1:], c[:, :, -1:]), 2)
    up = torch.stack((0.75 * c + 0.25 * prev, 0.75 * c + 0.25 * nxt), dim=3).flatten(2, 3)
    # horizontal: chroma column j sits on luma column 2j; odd columns average the neighbours
    right = torch.cat((up[..., 1:], up[..., -1:]), -1)
    up = torch.stack((up, 0.5 * (up + right)), dim=-1).flatten(-2, -1)
    return up[:, :, :height, :width]


def yuv420_to_rgb(planes: Tensor, colorspace: int, full_range: bool, bits: int = 8) -> Tensor:
    """4:2:0 planes -> RGB.

    Args:
        planes: ``(T, H * 3 // 2, W)`` integer codes (uint8 at 8 bits; int16/int32 or float at
            10), PyAV's ``yuv420p``/``yuv420p10le`` ndarray layout: ``H`` rows of Y, then U and
            V each ``H/2 x W/2`` packed two rows per row. ``H`` and ``W`` even.
        colorspace: ``AVColorSpace`` code of the stream (1: BT.709, 5/6: BT.601, 9: BT.2020...).
        full_range: ``True`` for JPEG/pc range, ``False`` for MPEG/tv range.
        bits: bit depth of the codes (8 or 10).

    Returns:
        ``(T, 3, H, W)`` float32 RGB, nominally in [0, 1]; out-of-gamut codes (superwhite,
        saturated chroma) give values outside it, which are kept (see the module docstring).
    """
    t, rows, w = planes.shape
    h = rows * 2 // 3
    n, m = h * w, (h // 2) * (w // 2)
    p = planes.reshape(t, -1).float()  # flat: Y, then U, then V (PyAV packs them into W-wide rows)
    yo, ys, co, cs = _levels(full_range, bits)
    y = (p[:, :n].reshape(t, 1, h, w) - yo) / ys
    u = (p[:, n : n + m].reshape(t, 1, h // 2, w // 2) - co) / cs
    v = (p[:, n + m :].reshape(t, 1, h // 2, w // 2) - co) / cs
    u = _upsample_chroma(u, h, w)
    v = _upsample_chroma(v, h, w)
    kr, kg, kb = _coeffs(colorspace)
    r = y + 2 * (1 - kr) * v
    b = y + 2 * (1 - kb) * u
    g = (y - kr * r - kb * b) / kg
    return torch.cat((r, g, b), 1)


def rgb_to_yuv420(rgb: Tensor, colorspace: int, full_range: bool, bits: int = 8) -> Tensor:
    """RGB -> 4:2:0 planes in PyAV's ``yuv420p``/``yuv420p10le`` ndarray layout.

    Args:
        rgb: ``(T, 3, H, W)`` float RGB, nominally in [0, 1]. Values outside it are converted,
            not clipped; only the final codes are clamped to ``[0, 2^bits - 1]``. ``H``, ``W`` even.
        colorspace, full_range: the output stream's matrix and range (see :func:`yuv420_to_rgb`).
        bits: 8 (uint8 codes) or 10 (int16 codes: the ``yuv420p10le`` values).

    Returns:
        ``(T, H * 3 // 2, W)`` uint8 (8 bits) or int16 (10 bits) on ``rgb``'s device.

    Raises:
        ValueError: odd height or width.
    """
    t, _, h, w = rgb.shape
    if h % 2 or w % 2:
        raise ValueError(f"4:2:0 needs an even size, got {h}x{w}")
    x = rgb.float()
    kr, kg, kb = _coeffs(colorspace)
    yo, ys, co, cs = _levels(full_range, bits)
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = kr * r + kg * g + kb * b
    u = (b - y) / (2 * (1 - kb))
    v = (r - y) / (2 * (1 - kr))
    chroma = torch.cat((u, v), 1)  # (T, 2, H, W)
    chroma = 0.5 * (chroma[:, :, 0::2] + chroma[:, :, 1::2])  # vertical: mean of the two rows
    padded = F.pad(chroma, (1, 1, 0, 0), mode="replicate")
    chroma = 0.25 * padded[..., 0:-2:2] + 0.5 * padded[..., 1:-1:2] + 0.25 * padded[..., 2::2]  # [1,2,1]/4 at even cols
    y, chroma = y * ys + yo, chroma * cs + co
    peak = (1 << bits) - 1
    out = torch.int16 if bits > 8 else torch.uint8
    y = y.round_().clamp_(0, peak).to(out).reshape(t, -1)
    chroma = chroma.round_().clamp_(0, peak).to(out).reshape(t, -1)  # U plane, then V plane
    return torch.cat((y, chroma), 1).reshape(t, h * 3 // 2, w)
