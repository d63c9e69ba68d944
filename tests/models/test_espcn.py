"""ESPCN luma-only (upvid.models.espcn) against EGVSR's espcn_nets.py, and the Upscaler's Y path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from upvid.models.espcn import ESPCN, convert_official
from upvid.models.registry import get_record
from upvid.models.load import load_model
from upvid.models.upscaler import rgb_to_ycbcr, ycbcr_to_rgb
from tests.models import parity
from tests.models import small_sr as C

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "espcn"
NAME = "espcn-x4-y"


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return C.load_real(NAME, tmp_path_factory)


def test_real_checkpoint_strict_and_parity(real):
    meta = json.loads((FIX / "meta.json").read_text())
    data = load_file(str(FIX / "real.safetensors"))
    assert sum(p.numel() for p in real.net.parameters()) == get_record(NAME).params == 29_904
    assert sum(math_prod(s) for s in meta["official_keys"].values()) == 30_738  # + unused reconv/deconv
    parity.assert_close(real.net, data, meta["real"]["tolerance"])


def math_prod(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def test_parity_random():
    meta = json.loads((FIX / "meta.json").read_text())
    official = parity.numpy_weights(parity.module_from_shapes(meta["official_keys"]), meta["rand"]["seed"])
    net = ESPCN().eval()
    net.load_state_dict(convert_official(official), strict=True)
    data = load_file(str(FIX / "rand.safetensors"))
    parity.assert_close(net, data, meta["rand"]["tolerance"])


def test_official_keys_convert_and_load_strict():
    shapes = json.loads((FIX / "meta.json").read_text())["official_keys"]
    converted = convert_official({k: torch.zeros(s) for k, s in shapes.items()})
    assert not any(k.startswith(("reconv.", "deconv.")) for k in converted)
    ESPCN().load_state_dict(converted, strict=True)
    with pytest.raises(ValueError):
        convert_official({"net.conv1.weight": torch.zeros(1)})


def test_upscaler_luma_path():
    """channels = "y": the network sees BT.601 Y, chroma is bicubic-upsampled, the result is RGB."""
    model = load_model(NAME, pretrained=False)
    x = torch.rand(2, 1, 3, 13, 17)
    with torch.no_grad():
        y = model(x)
        ycc = rgb_to_ycbcr(x[:, 0])
        manual = ycbcr_to_rgb(torch.cat([model.net(ycc[:, :1]),
                                         F.interpolate(ycc[:, 1:], scale_factor=4, mode="bicubic")], 1))
    assert y.shape == (2, 1, 3, 52, 68)
    assert (y[:, 0] - manual).abs().max().item() < 1e-6


def test_quality_vid4(real):
    """A weak model: about bicubic quality. On bicubic-downscaled Vid4 it must not lose to bicubic."""
    hr = C.read_gt("city", [1])
    lr = C.bi_lr(hr)
    with torch.no_grad():
        sr = real(lr[:, None])[0, 0]
    p_model, p_bic = C.psnr_y(sr, hr[0]), C.psnr_y(C.bicubic_up(lr)[0], hr[0])
    assert p_model > p_bic, (p_model, p_bic)
