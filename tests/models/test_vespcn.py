"""VESPCN (upvid.models.vespcn) against EGVSR's vespcn_nets.py + utils/motion.py with its BD x4 checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from upvid.bench.degrade import bd_degrade
from upvid.errors import ModelInputError
from upvid.models.registry import get_record
from upvid.models.load import load_model
from upvid.models.vespcn import VESPCN, convert_official
from tests.models import parity
from tests.models import small_sr as C

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "vespcn"
NAME = "vespcn-x4-bd"
#: forward() equals the official output shifted by 8 HR px, away from the zero-padded body convs' reach
INTERIOR = 24


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return C.load_real(NAME, tmp_path_factory)


def _check(net: VESPCN, data: dict, tol: float) -> None:
    x, ref = data["input"], data["output"]  # (1, 3, 3, h, w), (1, 3, 4h-18, 4w-18)
    with torch.no_grad():
        official = net.forward_official(x)
        full = net(x)
    assert (official - ref).abs().max().item() <= tol
    h, w = x.shape[-2:]
    assert full.shape == (1, 3, 4 * h, 4 * w)
    i = INTERIOR
    inner = full[..., 8:8 + ref.shape[-2], 8:8 + ref.shape[-1]][..., i:-i, i:-i]
    assert (inner - ref[..., i:-i, i:-i]).abs().max().item() <= tol


def test_real_checkpoint_strict_and_parity(real):
    meta = json.loads((FIX / "meta.json").read_text())["real"]
    assert sum(p.numel() for p in real.net.parameters()) == get_record(NAME).params == 878_787
    _check(real.net, load_file(str(FIX / "real.safetensors")), meta["tolerance"])


def test_parity_random():
    meta = json.loads((FIX / "meta.json").read_text())
    official = parity.numpy_weights(parity.module_from_shapes(meta["official_keys"]), meta["rand"]["seed"])
    net = VESPCN().eval()
    net.load_state_dict(convert_official(official), strict=True)
    _check(net, load_file(str(FIX / "rand.safetensors")), meta["rand"]["tolerance"])


def test_official_keys_convert_and_load_strict():
    shapes = json.loads((FIX / "meta.json").read_text())["official_keys"]
    converted = convert_official({k: torch.zeros(s) for k, s in shapes.items()})
    net = VESPCN(**get_record(NAME).kwargs)
    assert set(converted) == set(net.state_dict())
    net.load_state_dict(converted, strict=True)
    assert "flow.coarse.0.weight" in converted and "sr.body.2.conv2.bias" in converted
    with pytest.raises(ValueError):
        convert_official({"mc.coarse_flow.0.weight": torch.zeros(1)})


def test_reference_frames_and_window_contract():
    """The checkpoint's quirk: the previous frame is never read; the next frame fills both reference slots."""
    net = VESPCN().eval()
    assert net.reference_indices() == [2, 2]
    x = torch.rand(1, 3, 3, 16, 16)
    other = x.clone()
    other[:, 0] = torch.rand(3, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x), net(other))
    with pytest.raises(ModelInputError):
        net(torch.rand(1, 3, 3, 18, 16))  # not a multiple of 4 (the Upscaler pads it)
    with pytest.raises(ModelInputError):
        net(torch.rand(1, 2, 3, 16, 16))


@pytest.mark.parametrize("size", [(32, 28), (30, 34), (4, 8)])
def test_load_model_shapes(size):
    h, w = size
    model = load_model(NAME, pretrained=False)
    with torch.no_grad():
        y = model(torch.rand(1, 3, 3, h, w))
    assert y.shape == (1, 1, 3, 4 * h, 4 * w)
    assert torch.isfinite(y).all()


def test_quality_vid4_bd(real):
    """Vid4 calendar, Gaussian blur sigma 1.5 + x4 subsampling (EGVSR's BD test LR): VESPCN clearly beats
    plain bicubic, and beats bicubic evaluated on the BD sampling grid (LR pixel i at HR pixel 4i)."""
    hr = C.read_gt("calendar", [0, 1, 2])
    lr = bd_degrade(hr, 4, sigma=1.5)
    with torch.no_grad():
        sr = real(lr[None])[0, 0]
    gt = hr[1]
    p_model = C.psnr_y(sr, gt)
    p_bic = C.psnr_y(C.bicubic_up(lr[1:2])[0], gt)
    h, w = lr.shape[-2:]  # bicubic through the LR sample positions 4i (align_corners=True on a 1-px extended grid)
    grid = F.interpolate(F.pad(lr[1:2], (0, 1, 0, 1), mode="replicate"), size=(4 * h + 1, 4 * w + 1), mode="bicubic",
                         align_corners=True)[0, :, : 4 * h, : 4 * w].clamp(0, 1)
    p_grid = C.psnr_y(grid, gt)
    assert p_model > p_bic + 1.0, (p_model, p_bic)
    assert p_model > p_grid + 0.2, (p_model, p_grid)
