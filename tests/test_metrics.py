"""PSNR / SSIM conventions of the VSR literature (upvid.bench.metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from upvid.bench import metrics as M
from upvid.models.upscaler import rgb_to_ycbcr


def _img(h: int = 24, w: int = 20, seed: int = 0, lo: int = 0, hi: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).integers(lo, hi, size=(h, w, 3), dtype=np.uint8)


def test_identical_images() -> None:
    a = _img()
    assert M.psnr_y(a, a) == math.inf
    assert M.psnr_rgb(a, a) == math.inf
    assert M.ssim_y(a, a) == pytest.approx(1.0, abs=1e-12)
    assert M.ssim(a, a, y_channel=False) == pytest.approx(1.0, abs=1e-12)
    t = torch.from_numpy(a).permute(2, 0, 1).float() / 255
    assert M.psnr_y(t, t) == math.inf
    assert M.ssim_y(t[None], t[None]) == pytest.approx(1.0, abs=1e-12)
    big = _img(40, 36)
    view = big[3:27, 5:25]  # non-contiguous view vs a contiguous copy: still exactly equal
    assert M.psnr_y(view, np.ascontiguousarray(view)) == math.inf


def test_known_mse_rgb_and_y() -> None:
    a = _img(32, 30, lo=10, hi=246)
    signs = np.random.default_rng(1).choice([-3, 3], size=a.shape[:2])
    b = (a.astype(np.int16) + signs[..., None]).astype(np.uint8)  # the same +-3 on R, G and B
    assert M.psnr_rgb(a, b) == pytest.approx(10 * math.log10(255**2 / 9), abs=1e-10)
    # Y moves by 3 * (65.481 + 128.553 + 24.966) / 255 = 3 * 219 / 255 per pixel
    mse_y = (3 * 219 / 255) ** 2
    assert M.psnr_y(a, b) == pytest.approx(10 * math.log10(255**2 / mse_y), abs=1e-10)


def test_gaussian_noise_level() -> None:
    rng = np.random.default_rng(2)
    a = rng.uniform(0.2, 0.8, size=(256, 256, 3))
    sigma = 2.0 / 255  # 2 grey levels
    b = a + rng.normal(0.0, sigma, size=a.shape)
    # expected 20 log10(255 / 2) = 42.11 dB; sampling error of the MSE over 196k values ~0.3 %
    assert M.psnr_rgb(a, b) == pytest.approx(20 * math.log10(255 / 2), abs=0.03)


def test_crop_border() -> None:
    a = _img(30, 28)
    b = a.copy()
    b[:4] = 0
    b[:, -4:] = 255
    assert M.psnr_y(a, b) < 30
    assert M.psnr_y(a, b, crop_border=4) == math.inf
    assert M.ssim_y(a, b, crop_border=4) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError):
        M.psnr_y(a, b, crop_border=15)


def test_input_conventions_agree() -> None:
    a, b = _img(seed=3), _img(seed=4)
    ta = torch.from_numpy(a).permute(2, 0, 1).double() / 255
    tb = torch.from_numpy(b).permute(2, 0, 1).double() / 255
    fa, fb = a.astype(np.float64) / 255, b.astype(np.float64) / 255
    ref_p, ref_s = M.psnr_y(a, b), M.ssim_y(a, b)
    for x, y in [(ta, tb), (ta[None], tb[None]), (fa, fb)]:
        assert M.psnr_y(x, y) == pytest.approx(ref_p, abs=1e-9)
        assert M.ssim_y(x, y) == pytest.approx(ref_s, abs=1e-12)
    assert np.array_equal(M.to_uint8(ta), a)
    with pytest.raises(ValueError):
        M.psnr_y(a, b[:-1])


def test_y_channel_values() -> None:
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    y = M.rgb_to_y(px)[0]
    np.testing.assert_allclose(y, [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966], atol=1e-12)
    # the same convention as the model registry's BT.601 conversion
    a = _img(seed=5)
    t = torch.from_numpy(a).permute(2, 0, 1).double() / 255
    np.testing.assert_allclose(M.rgb_to_y(a), rgb_to_ycbcr(t)[0].numpy() * 255, atol=1e-9)


def test_ssim_constant_images_closed_form() -> None:
    # constant images: mu = p, q and all (co)variances 0 -> SSIM = (2pq + C1) / (p^2 + q^2 + C1)
    p, q = 100.0, 120.0
    a = np.full((16, 16), p / 255)
    b = np.full((16, 16), q / 255)
    c1 = (0.01 * 255) ** 2
    expected = (2 * p * q + c1) / (p * p + q * q + c1)
    assert M.ssim(a, b, y_channel=True) == pytest.approx(expected, rel=1e-12)


def _ssim_bruteforce(a: np.ndarray, b: np.ndarray) -> float:
    """Direct definition: every 11x11 window, Gaussian weights sigma 1.5, valid positions only."""
    x = np.arange(11) - 5.0
    g = np.exp(-(x**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va = (w * (pa - ma) ** 2).sum()
            vb = (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_matches_direct_definition() -> None:
    a = _img(16, 15, seed=6)
    noise = np.random.default_rng(7).integers(-20, 21, size=a.shape)
    b = np.clip(a.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    ya, yb = M.rgb_to_y(a), M.rgb_to_y(b)
    assert M.ssim_y(a, b) == pytest.approx(_ssim_bruteforce(ya, yb), abs=1e-12)
    per_channel = [_ssim_bruteforce(a[..., c].astype(np.float64), b[..., c].astype(np.float64)) for c in range(3)]
    assert M.ssim(a, b, y_channel=False) == pytest.approx(np.mean(per_channel), abs=1e-12)
    with pytest.raises(ValueError):
        M.ssim_y(a[:10], b[:10])


def test_mean_of_means() -> None:
    assert M.mean_of_means([[1.0, 3.0], [10.0]]) == pytest.approx(6.0)
    with pytest.raises(ValueError):
        M.mean_of_means([])
