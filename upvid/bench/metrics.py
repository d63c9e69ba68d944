"""Full-reference image quality metrics with the conventions of the VSR literature.

What the published tables report, and what these functions compute:

- **PSNR-Y / SSIM-Y** (Vid4, UDM10, Vimeo-90K-T, SPMCS): the images are converted to the luma
  of ITU-R BT.601 studio range, MATLAB ``rgb2ycbcr`` convention::

      Y = 16 + (65.481 * R + 128.553 * G + 24.966 * B) / 255      (R, G, B, Y in [0, 255])

  kept in float64 and **not rounded** (as BasicSR ``calculate_psnr(..., test_y_channel=True)``
  and MMEditing ``convert_to='y'``; MATLAB's ``rgb2ycbcr`` on ``uint8`` would round Y, which moves
  Vid4 numbers by about 0.01 dB).
- **RGB PSNR** (REDS4): the mean squared error over all three channels.
- PSNR is ``10 * log10(255**2 / MSE)`` with the MSE in float64 on [0, 255] values; identical
  images give ``inf``.
- SSIM is Wang et al. 2004 with the reference MATLAB parameters: an 11x11 Gaussian window of
  sigma 1.5 (normalised), ``K1 = 0.01``, ``K2 = 0.03``, ``L = 255``, "valid" filtering (no
  padding: the map is ``(H - 10, W - 10)``), the mean of the map; for RGB the mean of the three
  per-channel SSIMs. Computed in float64 (the window is separable: two 1-D passes).
- ``crop_border`` pixels are removed from each of the four sides before anything else (the
  literature uses 0 for BasicVSR-family Vid4/REDS4 tables and ``scale`` for some older protocols).
- A sequence's score is the mean over its frames; a dataset's score is the mean over its
  sequences (:func:`mean_of_means`), as the BasicSR/MMEditing video test loops do.

Accepted image inputs (both arguments must have the same kind and shape):

- ``numpy.ndarray`` of dtype ``uint8``, shape ``(H, W, 3)`` RGB (or ``(H, W)`` grey), values
  [0, 255] — the normal case: what the engine yields and what PNGs decode to.
- ``numpy.ndarray`` of a float dtype, shape ``(H, W, 3)`` / ``(H, W)``, values in [0, 1].
- ``torch.Tensor`` of a float dtype, shape ``(3, H, W)`` (or ``(1, 3, H, W)``, or ``(H, W)``),
  values in [0, 1]; ``uint8`` tensors are taken as [0, 255].

Float inputs are used as given (times 255), **not** rounded: to score what a model would have
written to a PNG, quantise first (:func:`to_uint8`), as every published number does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

__all__ = [
    "to_uint8",
    "rgb_to_y",
    "psnr",
    "psnr_y",
    "psnr_rgb",
    "ssim",
    "ssim_y",
    "mean_of_means",
]

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64) / 255.0

ImageLike = np.ndarray | torch.Tensor


def to_uint8(img: ImageLike) -> np.ndarray:
    """Quantise a float image in [0, 1] to ``uint8`` ``(H, W, 3)`` (``round(clip(x, 0, 1) * 255)``).

    Args:
        img: float ``(3, H, W)`` / ``(1, 3, H, W)`` tensor, or float ``(H, W, 3)`` array, in [0, 1].
            ``uint8`` arrays are returned unchanged.

    Returns:
        ``(H, W, 3)`` ``uint8`` array (``(H, W)`` for grey input).
    """
    if isinstance(img, np.ndarray) and img.dtype == np.uint8:
        return img
    arr = _as_hwc_255(img)
    return np.clip(np.floor(arr + 0.5), 0, 255).astype(np.uint8)


def _as_hwc_255(img: ImageLike) -> np.ndarray:
    """Any accepted input -> float64 ``(H, W, C)`` or ``(H, W)`` array on the [0, 255] scale."""
    if isinstance(img, torch.Tensor):
        t = img.detach().cpu()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError(f"expected one image (1, C, H, W), got a batch of shape {tuple(t.shape)}")
            t = t[0]
        if t.ndim == 3:
            t = t.permute(1, 2, 0)
        elif t.ndim != 2:
            raise ValueError(f"expected a (C, H, W) or (H, W) tensor, got shape {tuple(t.shape)}")
        arr = t.to(torch.float64).numpy()
        return arr if img.dtype == torch.uint8 else arr * 255.0
    if not isinstance(img, np.ndarray):
        raise TypeError(f"expected a numpy array or torch tensor, got {type(img).__name__}")
    if img.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W, C) or (H, W) array, got shape {img.shape}")
    if img.dtype == np.uint8:
        return img.astype(np.float64)
    if np.issubdtype(img.dtype, np.floating):
        return img.astype(np.float64) * 255.0
    raise TypeError(f"unsupported array dtype {img.dtype} (use uint8 [0, 255] or float [0, 1])")


def rgb_to_y(img: ImageLike) -> np.ndarray:
    """BT.601 luma, MATLAB ``rgb2ycbcr`` convention, unrounded.

    Args:
        img: an accepted RGB image (see the module docstring).

    Returns:
        float64 ``(H, W)`` array with Y in [16, 235] (for inputs in range).
    """
    arr = _as_hwc_255(img)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB image with 3 channels, got shape {arr.shape}")
    return _y(arr)


def _y(arr: np.ndarray) -> np.ndarray:
    # element-wise (not matmul): bit-identical results whatever the memory layout of the input
    w = _Y_WEIGHTS
    return arr[..., 0] * w[0] + arr[..., 1] * w[1] + arr[..., 2] * w[2] + 16.0


def _prepare(img: ImageLike, img2: ImageLike, crop_border: int, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_hwc_255(img), _as_hwc_255(img2)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border:
        if 2 * crop_border >= min(a.shape[:2]):
            raise ValueError(f"crop_border {crop_border} leaves nothing of a {a.shape[:2]} image")
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    if y_channel:
        if a.ndim == 3 and a.shape[2] == 3:
            a, b = _y(a), _y(b)
        elif not (a.ndim == 2 or a.shape[2] == 1):
            raise ValueError(f"Y channel needs an RGB or single-channel image, got shape {a.shape}")
    if a.ndim == 3 and a.shape[2] == 1:
        a, b = a[..., 0], b[..., 0]
    return a, b


def psnr(img: ImageLike, img2: ImageLike, *, crop_border: int = 0, y_channel: bool = True) -> float:
    """Peak signal-to-noise ratio in dB, peak 255, float64.

    Args:
        img, img2: two accepted images of the same shape (see the module docstring).
        crop_border: pixels removed from each side first.
        y_channel: ``True``: PSNR on BT.601 Y (PSNR-Y); ``False``: over all channels (RGB PSNR).

    Returns:
        PSNR in dB; ``math.inf`` if the (cropped, converted) images are identical.
    """
    a, b = _prepare(img, img2, crop_border, y_channel)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0 * 255.0 / mse)


def psnr_y(img: ImageLike, img2: ImageLike, *, crop_border: int = 0) -> float:
    """PSNR on the BT.601 Y channel (Vid4/UDM10/Vimeo-90K-T convention). See :func:`psnr`."""
    return psnr(img, img2, crop_border=crop_border, y_channel=True)


def psnr_rgb(img: ImageLike, img2: ImageLike, *, crop_border: int = 0) -> float:
    """PSNR over the R, G and B channels together (REDS4 convention). See :func:`psnr`."""
    return psnr(img, img2, crop_border=crop_border, y_channel=False)


def gaussian_window_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian ``exp(-x**2 / (2 sigma**2))`` on ``x = -(size//2) .. size//2``, float64.

    The 2-D SSIM window is its outer product with itself (as ``fspecial('gaussian', 11, 1.5)``).
    """
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray, axis: int) -> np.ndarray:
    """Valid-mode correlation of ``x`` with the 1-D kernel ``g`` along ``axis`` (float64 shifted sums)."""
    n = x.shape[axis] - len(g) + 1
    idx = [slice(None)] * x.ndim

    def part(k: int) -> np.ndarray:
        idx[axis] = slice(k, k + n)
        return x[tuple(idx)]

    acc = g[0] * part(0)
    for k in range(1, len(g)):
        acc += g[k] * part(k)
    return acc


def _ssim_2d(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two float64 ``(H, W)`` arrays on [0, 255], valid-mode 11x11 Gaussian window."""
    if min(a.shape) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {a.shape}")
    c1 = (0.01 * 255.0) ** 2
    c2 = (0.03 * 255.0) ** 2
    g = gaussian_window_1d()
    x = np.stack([a, b, a * a, b * b, a * b])  # (5, H, W)
    m = _filter_valid(_filter_valid(x, g, 1), g, 2)  # separable 11x11 window, (5, H-10, W-10)
    mu1, mu2 = m[0], m[1]
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1, s2, s12 = m[2] - mu1_sq, m[3] - mu2_sq, m[4] - mu12
    ssim_map = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return float(ssim_map.mean())


def ssim(img: ImageLike, img2: ImageLike, *, crop_border: int = 0, y_channel: bool = True) -> float:
    """Structural similarity (Wang et al. 2004, reference MATLAB parameters), float64.

    Args:
        img, img2: two accepted images of the same shape, at least 11x11 after cropping.
        crop_border: pixels removed from each side first.
        y_channel: ``True``: SSIM on BT.601 Y; ``False``: mean of the per-channel SSIMs.

    Returns:
        SSIM in [-1, 1]; exactly 1.0 for identical images.
    """
    a, b = _prepare(img, img2, crop_border, y_channel)
    if a.ndim == 2:
        return _ssim_2d(a, b)
    return float(np.mean([_ssim_2d(a[..., c], b[..., c]) for c in range(a.shape[2])]))


def ssim_y(img: ImageLike, img2: ImageLike, *, crop_border: int = 0) -> float:
    """SSIM on the BT.601 Y channel. See :func:`ssim`."""
    return ssim(img, img2, crop_border=crop_border, y_channel=True)


def mean_of_means(per_sequence: Iterable[Iterable[float]]) -> float:
    """Dataset average: the mean over sequences of each sequence's mean over frames.

    ``inf`` values (identical frames) propagate to ``inf``.
    """
    means = [float(np.mean(list(seq))) for seq in per_sequence]
    if not means:
        raise ValueError("no sequences")
    return float(np.mean(means))
