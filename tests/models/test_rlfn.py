"""RLFN (upvid.models.rlfn) against NTIRE2022_ESR's team04_rlfn.py (RLFN_cut) with the challenge checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from upvid.models.registry import get_record
from upvid.models.load import load_model
from upvid.models.rlfn import RLFN, convert_official
from tests.models import parity
from tests.models import small_sr as C

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "rlfn"
NAME = "rlfn-x4"


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return C.load_real(NAME, tmp_path_factory)


def test_real_checkpoint_strict_and_parity(real):
    meta = json.loads((FIX / "meta.json").read_text())["real"]
    data = load_file(str(FIX / "real.safetensors"))  # input and output in [0, 255]
    assert sum(p.numel() for p in real.net.parameters()) == get_record(NAME).params == 317_218
    with torch.no_grad():
        y = real.net(data["input"])
        wrapped = real((data["input"] / 255).unsqueeze(1))[:, 0] * 255  # Upscaler scales [0, 1] <-> [0, 255]
    # tolerance in [0, 1] units: the network works in [0, 255] (float32 ulp at 128 is 7.6e-6)
    assert (y - data["output"]).abs().max().item() / 255 <= meta["tolerance"]
    assert (wrapped - data["output"]).abs().max().item() / 255 <= meta["tolerance"]


def test_parity_random_small():
    meta = json.loads((FIX / "meta.json").read_text())["rand"]
    data = load_file(str(FIX / "rand.safetensors"))
    net = RLFN(**meta["config"]).eval()
    net.load_state_dict(parity.numpy_weights(net, meta["seed"]), strict=True)
    with torch.no_grad():
        y = net(data["input"])
    assert (y - data["output"]).abs().max().item() / 255 <= meta["tolerance"]  # [0, 1] units


def test_official_keys_convert_and_load_strict():
    net = RLFN(**get_record(NAME).kwargs)
    official = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}
    assert len(official) == 78 and "B4.esa.conv_f.weight" in official and "upsampler.0.bias" in official
    net.load_state_dict(convert_official(official), strict=True)
    with pytest.raises(ValueError):
        convert_official({"module.fea_conv.weight": torch.zeros(1)})


@pytest.mark.parametrize("size", [(32, 28), (10, 13)])
def test_load_model_shapes(size):
    """(10, 13) is below the attention gate's minimum (15): padded internally, cropped back."""
    h, w = size
    model = load_model(NAME, pretrained=False)
    with torch.no_grad():
        y = model(torch.rand(1, 1, 3, h, w))
    assert y.shape == (1, 1, 3, 4 * h, 4 * w)
    assert torch.isfinite(y).all()


def test_quality_vid4(real):
    """Bicubic-downscaled Vid4 calendar frames: RLFN (a BI DIV2K model) clearly beats bicubic."""
    hr = C.read_gt("calendar", [0, 1])[..., 128:384, 160:480]  # 256 x 320 (LR 64 x 80)
    lr = C.bi_lr(hr)
    with torch.no_grad():
        sr = real(lr[:, None])[:, 0]  # two frames as a batch
    up = C.bicubic_up(lr)
    for i in range(2):
        p_model, p_bic = C.psnr_y(sr[i], hr[i]), C.psnr_y(up[i], hr[i])
        assert p_model > p_bic + 0.8, (i, p_model, p_bic)
