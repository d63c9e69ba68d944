"""MATLAB-bicubic imresize, BI/BD degradations (upvid.bench.degrade), and the literature's Vid4 bicubic row."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from torch.nn import functional as F

from upvid.bench import metrics as M
from upvid.bench.degrade import bd_degrade, bi_degrade, gaussian_kernel, imresize, mod_crop, resize_matrix
from upvid.errors import UsageError

FIXTURES = Path(__file__).parent / "fixtures" / "imresize"
SHARED = Path(os.environ.get("UPVID_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
VID4_GT = SHARED / "vid4" / "GT"


@pytest.fixture(scope="module")
def ref() -> tuple[dict[str, np.ndarray], dict]:
    return load_file(str(FIXTURES / "imresize.safetensors")), json.loads((FIXTURES / "meta.json").read_text())


def test_imresize_matches_basicsr_matlab_port(ref) -> None:
    tensors, meta = ref
    for name, case in meta["cases"].items():
        x = torch.from_numpy(tensors[f"{name}.input"]).permute(2, 0, 1).double() / 255
        y = imresize(x, case["scale"]).permute(1, 2, 0).numpy()
        expected = tensors[f"{name}.output"]
        assert y.shape == expected.shape, name
        np.testing.assert_allclose(y, expected, atol=2e-6, err_msg=name)


def test_bd_matches_duf_downsample(ref) -> None:
    tensors, _ = ref
    np.testing.assert_allclose(gaussian_kernel(13, 1.6).numpy(), tensors["bd4.kernel"], atol=1e-15)
    hr = torch.from_numpy(tensors["bd4.input"]).double() / 255
    np.testing.assert_allclose(bd_degrade(hr, 4, quantize=False).numpy(), tensors["bd4.output"], atol=2e-6)


def test_gaussian_kernel_small_sigma_and_sum() -> None:
    k = gaussian_kernel(13, 0.8)  # the x2 setting: radius 3, zeros outside
    assert k.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert k[0].abs().max().item() == 0.0 and k[6, 6] == k.max()


def test_resize_matrix_rows_and_symmetry() -> None:
    for n_in, n_out, s in [(20, 5, 0.25), (7, 28, 4.0), (12, 9, 0.75)]:
        m = resize_matrix(n_in, n_out, s)
        assert m.shape == (n_out, n_in)
        torch.testing.assert_close(m.sum(1), torch.ones(n_out, dtype=torch.float64))
        # mirror symmetry of the half-pixel-centred grid: flipping input and output flips the operator
        torch.testing.assert_close(m.flip(0).flip(1), m)


def test_constant_and_linear_reproduction() -> None:
    c = torch.full((2, 3, 12, 16), 0.37, dtype=torch.float64)
    torch.testing.assert_close(imresize(c, 4), torch.full((2, 3, 48, 64), 0.37, dtype=torch.float64))
    torch.testing.assert_close(imresize(c, 0.25), torch.full((2, 3, 3, 4), 0.37, dtype=torch.float64))
    # Keys' cubic reproduces linear functions: away from the border, up-sampling a ramp samples the ramp
    n, s = 16, 4
    ramp = torch.arange(n, dtype=torch.float64).view(1, n).expand(3, n)
    up = imresize(ramp, s)[0]
    u = (torch.arange(1, n * s + 1, dtype=torch.float64) / s + 0.5 * (1 - 1 / s)) - 1  # 0-based source coords
    inner = slice(2 * s, -2 * s)
    torch.testing.assert_close(up[inner], u[inner])


def test_differs_from_pytorch_bicubic() -> None:
    # PyTorch's bicubic uses a = -0.75 and clamped borders: not the literature's MATLAB bicubic
    x = torch.rand(1, 3, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours = imresize(x, 2)
    torchs = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    assert (ours - torchs).abs().max() > 1e-3


def test_uint8_path_rounds_like_matlab() -> None:
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, size=(2, 3, 16, 12), dtype=np.uint8))
    y8 = imresize(x, 0.5)
    yf = imresize(x.double(), 0.5)
    assert y8.dtype == torch.uint8
    assert torch.equal(y8, torch.floor(yf + 0.5).clamp(0, 255).to(torch.uint8))
    lr_u8 = bi_degrade(x, 4)
    lr_f = bi_degrade(x.float() / 255, 4)
    assert lr_u8.shape == (2, 3, 4, 3) and lr_u8.dtype == torch.uint8
    assert lr_f.dtype == torch.float32
    assert torch.equal(torch.round(lr_f * 255).to(torch.uint8), lr_u8)  # float output on the 8-bit grid
    bd_u8 = bd_degrade(x, 4)
    assert bd_u8.shape == (2, 3, 4, 3)
    assert torch.equal(torch.round(bd_degrade(x.float() / 255, 4) * 255).to(torch.uint8), bd_u8)


def test_size_argument_and_errors() -> None:
    x = torch.rand(3, 20, 30, dtype=torch.float64)
    assert imresize(x, size=(5, 10)).shape == (3, 5, 10)
    assert imresize(x, 1 / 3).shape == (3, 7, 10)  # MATLAB: ceil(in * scale)
    with pytest.raises(UsageError):
        imresize(x)
    with pytest.raises(UsageError):
        bi_degrade(torch.rand(1, 3, 18, 16), 4)  # 18 is not a multiple of 4
    assert bi_degrade(mod_crop(torch.rand(1, 3, 18, 16), 4), 4).shape == (1, 3, 4, 4)
    with pytest.raises(UsageError):
        bd_degrade(torch.rand(1, 3, 4, 4), 4)  # smaller than the blur


@pytest.mark.slow
@pytest.mark.skipif(not VID4_GT.is_dir(), reason=f"Vid4 ground truth not found at {VID4_GT} (set UPVID_SHARED_DATA)")
def test_vid4_bicubic_matches_literature() -> None:
    """Bicubic x4 on Vid4 (BI): 23.78 dB PSNR-Y / 0.6347 SSIM-Y in BasicVSR, EDVR, TDAN... tables.

    The literature's protocol: LR = MATLAB ``imresize(GT, 1/4)`` saved as 8-bit PNG; "Bicubic" =
    MATLAB ``imresize(LR, 4)`` rounded to 8 bits; Y channel, no border crop, mean over each clip's
    frames, then over the 4 clips.
    """
    from upvid.io.images import read_image_folder

    t0 = time.perf_counter()
    psnrs, ssims = [], []
    for seq in sorted(p for p in VID4_GT.iterdir() if p.is_dir()):
        gt = np.stack(list(read_image_folder(seq)))
        hr = torch.from_numpy(gt).permute(0, 3, 1, 2)
        sr = imresize(bi_degrade(hr, 4), 4).permute(0, 2, 3, 1).numpy()
        psnrs.append([M.psnr_y(g, s) for g, s in zip(gt, sr)])
        ssims.append([M.ssim_y(g, s) for g, s in zip(gt, sr)])
    assert len(psnrs) == 4, "Vid4 has 4 clips (calendar, city, foliage, walk)"
    assert M.mean_of_means(psnrs) == pytest.approx(23.78, abs=0.05)
    assert M.mean_of_means(ssims) == pytest.approx(0.6347, abs=0.002)
    assert time.perf_counter() - t0 < 300
