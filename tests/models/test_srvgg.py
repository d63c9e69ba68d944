"""SRVGGNetCompact / realesr-animevideov3 (upvid.models.srvgg) against Real-ESRGAN's srvgg_arch.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from upvid.models.registry import get_record
from upvid.models.load import load_model
from upvid.models.srvgg import SRVGGNetCompact, convert_official
from tests.models import parity
from tests.models import small_sr as C

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "srvgg"
NAME = "realesr-animevideov3"


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return C.load_real(NAME, tmp_path_factory)


def test_real_checkpoint_strict_and_parity(real):
    meta = json.loads((FIX / "meta.json").read_text())["real"]
    data = load_file(str(FIX / "real.safetensors"))
    assert sum(p.numel() for p in real.net.parameters()) == get_record(NAME).params == 621_424
    with torch.no_grad():
        y = real.net(data["input"])
        wrapped = real(data["input"].unsqueeze(1))[:, 0]
    assert (y - data["output"]).abs().max().item() <= meta["tolerance"]
    assert (wrapped - data["output"]).abs().max().item() <= meta["tolerance"]


def test_parity_random_small():
    meta = json.loads((FIX / "meta.json").read_text())["rand"]
    data = load_file(str(FIX / "rand.safetensors"))
    net = SRVGGNetCompact(**meta["config"]).eval()
    net.load_state_dict(parity.numpy_weights(net, meta["seed"]), strict=True)
    with torch.no_grad():
        y = net(data["input"])
    assert (y - data["output"]).abs().max().item() <= meta["tolerance"]


def test_official_keys_convert_and_load_strict():
    net = SRVGGNetCompact(**get_record(NAME).kwargs)
    official = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}  # body.0 .. body.34
    assert set(official) == {f"body.{i}.{p}" for i in range(0, 35, 2) for p in ("weight", "bias")} | {
        f"body.{i}.weight" for i in range(1, 34, 2)}
    net.load_state_dict(convert_official(official), strict=True)
    with pytest.raises(ValueError):
        convert_official({"params.body.0.weight": torch.zeros(1)})


def test_load_model_shapes():
    model = load_model(NAME, pretrained=False)
    with torch.no_grad():
        y = model(torch.rand(1, 1, 3, 32, 28))
    assert y.shape == (1, 1, 3, 128, 112)


def test_quality_cartoon_and_vid4(real):
    """An anime model: it must clearly beat bicubic on flat-colour line art (its domain), and stay
    about level with it on natural Vid4 frames (it smooths fine texture, so no PSNR gain is expected)."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(192.0), torch.arange(192.0), indexing="ij")
    img = torch.ones(3, 192, 192) * torch.rand(3, 1, 1, generator=g)
    for _ in range(14):  # flat discs with dark outlines
        cx, cy, r = (torch.rand(3, generator=g) * torch.tensor([192.0, 192.0, 40.0])).tolist()
        d = ((xx - cx) ** 2 + (yy - cy) ** 2).sqrt()
        img = torch.where((d < r + 10)[None], torch.rand(3, 1, 1, generator=g), img)
        img = torch.where(((d - r - 10).abs() < 1.5)[None], torch.full((3, 1, 1), 0.05), img)
    lr = C.bi_lr(img[None])
    with torch.no_grad():
        sr = real(lr[:, None])[0, 0]
    p_model, p_bic = C.psnr_y(sr, img), C.psnr_y(C.bicubic_up(lr)[0], img)
    assert p_model > p_bic + 1.5, (p_model, p_bic)

    hr = C.read_gt("calendar", [1])[..., 128:384, 160:480]  # 256 x 320 (LR 64 x 80)
    lr = C.bi_lr(hr)
    with torch.no_grad():
        sr = real(lr[:, None])[0, 0]
    p_model, p_bic = C.psnr_y(sr, hr[0]), C.psnr_y(C.bicubic_up(lr)[0], hr[0])
    assert p_model > p_bic - 0.5, (p_model, p_bic)
