"""Synthetic degradations of the VSR benchmarks: MATLAB bicubic (BI) and Gaussian blur + subsample (BD).

- :func:`imresize` re-implements MATLAB's ``imresize(img, scale, 'bicubic')`` (Keys cubic with
  ``a = -0.5``, kernel stretched by ``1/scale`` when shrinking = antialiasing, half-pixel-centre
  coordinate mapping, symmetric (edge-repeating) boundary) as two dense resampling matrices
  applied with ``matmul`` in float64. It is what produced the BI low-resolution inputs of Vid4,
  UDM10, Vimeo-90K-T and REDS, and also the literature's "Bicubic" baseline row (upscaling the
  BI input with the same function).
- :func:`bd_degrade` is the DUF protocol (Jo et al. 2018; BasicSR ``duf_downsample``): a 13x13
  Gaussian of sigma 1.6 (the ``0.4 * scale`` of the x4 setting) built like
  ``scipy.ndimage.gaussian_filter`` of a centred unit impulse, reflect padding without edge
  repetition, then every ``scale``-th pixel starting at pixel 0 (the sample at LR ``(i, j)`` is
  centred on HR pixel ``(scale*i, scale*j)``).

Both degradations round to 8 bits like the published LR PNGs: ``floor(v * 255 + 0.5)``
clipped to [0, 255] (MATLAB's ``uint8`` conversion; half-up for the non-negative values met here).

Tensors are ``(T, C, H, W)`` (any leading dims for :func:`imresize`); float tensors hold values
in [0, 1], ``uint8`` tensors values in [0, 255]; outputs keep the input's dtype.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from upvid.errors import UsageError

__all__ = ["imresize", "resize_matrix", "bi_degrade", "bd_degrade", "gaussian_kernel", "mod_crop"]


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with ``a = -0.5`` (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=64)
def _resize_matrix_np(in_len: int, out_len: int, scale: float, antialias: bool) -> np.ndarray:
    shrink = scale < 1 and antialias
    width = 4.0 / scale if shrink else 4.0
    x = np.arange(1, out_len + 1, dtype=np.float64)  # 1-based output coordinates
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # matching 1-based input coordinates
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # (out, taps), 1-based
    dist = u[:, None] - idx
    w = scale * _cubic(dist * scale) if shrink else _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # symmetric boundary: ... 2 1 | 1 2 ... n | n n-1 ... (period 2n), MATLAB's index mirroring
    period = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    src = period[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    m = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(m, (np.repeat(np.arange(out_len), taps), src.ravel()), w.ravel())
    m.setflags(write=False)
    return m


def resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True) -> Tensor:
    """The 1-D MATLAB-bicubic resampling operator as a dense ``(out_len, in_len)`` float64 matrix.

    Row ``k`` holds the weights of output sample ``k`` (rows sum to 1); boundary taps are
    folded back onto the edge pixels symmetrically.

    Args:
        in_len: input length.
        out_len: output length (MATLAB: ``ceil(in_len * scale)``).
        scale: the scale factor used for the coordinate mapping (output/input).
        antialias: widen the kernel by ``1/scale`` when ``scale < 1`` (MATLAB default).
    """
    return torch.from_numpy(_resize_matrix_np(in_len, out_len, float(scale), bool(antialias)).copy())


def _quantize(v255: Tensor) -> Tensor:
    return torch.floor(v255 + 0.5).clamp_(0.0, 255.0)


def imresize(
    x: Tensor,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
) -> Tensor:
    """MATLAB ``imresize(x, scale)`` / ``imresize(x, [h w])`` with the default bicubic method.

    Computed in float64. The output size is ``ceil(H * scale), ceil(W * scale)`` (or ``size``,
    in which case each axis uses its own ``out / in`` scale, as MATLAB does).

    Args:
        x: ``(..., H, W)`` tensor; float (any range: the operator is linear) or ``uint8``.
        scale: scale factor (> 0), e.g. ``0.25`` to shrink by 4, ``4`` to enlarge by 4.
        size: ``(out_h, out_w)`` instead of ``scale``.
        antialias: antialiased shrinking (MATLAB default ``true``).

    Returns:
        ``(..., out_h, out_w)``, same dtype and device as ``x``. Float outputs are not clamped
        or rounded (bicubic overshoots); ``uint8`` outputs are rounded half-up and clipped, as
        MATLAB does for ``uint8`` images.
    """
    if (scale is None) == (size is None):
        raise UsageError("imresize: give exactly one of scale or size")
    if x.ndim < 2:
        raise UsageError(f"imresize: expected (..., H, W), got shape {tuple(x.shape)}")
    in_h, in_w = x.shape[-2:]
    if size is not None:
        out_h, out_w = int(size[0]), int(size[1])
        sh, sw = out_h / in_h, out_w / in_w
    else:
        if scale <= 0:
            raise UsageError(f"imresize: scale must be > 0, got {scale}")
        sh = sw = float(scale)
        out_h, out_w = math.ceil(in_h * sh), math.ceil(in_w * sw)
    if out_h < 1 or out_w < 1:
        raise UsageError(f"imresize: output size {out_h}x{out_w} is empty")
    mh = resize_matrix(in_h, out_h, sh, antialias).to(x.device)
    mw = resize_matrix(in_w, out_w, sw, antialias).to(x.device)
    y = mh @ x.to(torch.float64) @ mw.T
    if x.dtype == torch.uint8:
        return _quantize(y).to(torch.uint8)
    return y.to(x.dtype)


def mod_crop(x: Tensor, scale: int) -> Tensor:
    """Crop ``(..., H, W)`` at the bottom/right to multiples of ``scale`` (the literature's GT crop)."""
    h, w = x.shape[-2:]
    return x[..., : h - h % scale, : w - w % scale]


def _check_frames(hr: Tensor, scale: int) -> None:
    if hr.ndim != 4:
        raise UsageError(f"expected HR frames (T, C, H, W), got shape {tuple(hr.shape)}")
    if not (isinstance(scale, int) and scale >= 1):
        raise UsageError(f"scale must be a positive integer, got {scale!r}")
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise UsageError(f"HR size {h}x{w} is not a multiple of the scale {scale}; mod_crop() it first")


def _to255(hr: Tensor) -> Tensor:
    x = hr.to(torch.float64)
    return x if hr.dtype == torch.uint8 else x * 255.0


def _from255(q: Tensor, like: Tensor, quantize: bool) -> Tensor:
    if quantize:
        q = _quantize(q)
    if like.dtype == torch.uint8:
        return (q if quantize else _quantize(q)).to(torch.uint8)
    return (q / 255.0).to(like.dtype)


def bi_degrade(hr: Tensor, scale: int, *, quantize: bool = True) -> Tensor:
    """BI degradation: MATLAB bicubic downscaling by ``1/scale`` (antialiased).

    Args:
        hr: ``(T, C, H, W)`` float in [0, 1] (or ``uint8``); ``H``, ``W`` multiples of ``scale``.
        scale: integer factor.
        quantize: round to the 8-bit grid like the published LR PNGs (default).

    Returns:
        ``(T, C, H/scale, W/scale)`` of ``hr``'s dtype; float values are ``n / 255`` when
        ``quantize`` (convert to ``uint8`` exactly with ``round(x * 255)``).
    """
    _check_frames(hr, scale)
    return _from255(imresize(_to255(hr), 1.0 / scale), hr, quantize)


@lru_cache(maxsize=16)
def _gaussian_kernel_np(size: int, sigma: float, truncate: float) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * t * t / (sigma * sigma))
    g /= g.sum()
    impulse = np.zeros(size, dtype=np.float64)
    impulse[size // 2] = 1.0
    ext = np.pad(impulse, radius, mode="symmetric")  # scipy.ndimage "reflect" boundary
    k1 = np.array([np.dot(g, ext[i : i + 2 * radius + 1]) for i in range(size)])
    k = np.outer(k1, k1)
    k.setflags(write=False)
    return k


def gaussian_kernel(size: int = 13, sigma: float = 1.6, truncate: float = 4.0) -> Tensor:
    """The DUF/BasicSR blur kernel: ``scipy.ndimage.gaussian_filter`` of a centred impulse.

    That is a separable sampled Gaussian of radius ``int(truncate * sigma + 0.5)``, each 1-D
    factor normalised, evaluated on a ``size``-long grid with reflect boundary (so taps beyond
    the grid fold back; for ``size=13, sigma=1.6`` the radius is 6 and nothing folds).

    Returns:
        ``(size, size)`` float64 kernel summing to 1.
    """
    return torch.from_numpy(_gaussian_kernel_np(int(size), float(sigma), float(truncate)).copy())


def bd_degrade(
    hr: Tensor,
    scale: int,
    sigma: float = 1.6,
    *,
    kernel_size: int = 13,
    quantize: bool = True,
) -> Tensor:
    """BD degradation: Gaussian blur then keep every ``scale``-th pixel (DUF / BasicVSR protocol).

    Equivalent to BasicSR ``duf_downsample`` (reflect pad ``kernel_size//2 + 2*scale``, strided
    ``conv2d``, crop 2 LR pixels per side), which reduces to a reflect pad of ``kernel_size//2``
    and a stride-``scale`` convolution sampling HR pixels ``0, scale, 2*scale, ...``.

    Args:
        hr: ``(T, C, H, W)`` float in [0, 1] (or ``uint8``); ``H``, ``W`` multiples of ``scale``
            and larger than ``kernel_size // 2``.
        scale: integer factor.
        sigma: Gaussian standard deviation in HR pixels (the literature: 1.6 for x4).
        kernel_size: kernel support (13).
        quantize: round to the 8-bit grid like the published LR PNGs (default).

    Returns:
        ``(T, C, H/scale, W/scale)`` of ``hr``'s dtype.
    """
    _check_frames(hr, scale)
    t, c, h, w = hr.shape
    pad = kernel_size // 2
    if min(h, w) <= pad:
        raise UsageError(f"bd_degrade: frames of {h}x{w} are too small for a {kernel_size}-tap blur")
    k = gaussian_kernel(kernel_size, sigma).to(hr.device).view(1, 1, kernel_size, kernel_size)
    x = _to255(hr).reshape(t * c, 1, h, w)
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(x, k, stride=scale).view(t, c, h // scale, w // scale)
    return _from255(y, hr, quantize)
