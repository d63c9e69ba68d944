"""BasicVSR++ (upvid.models.basicvsrpp) against the official MMEditing basicvsr_pp.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from upvid.errors import ModelInputError
from upvid.models.basicvsrpp import BasicVSRPlusPlus, convert_official
from upvid.models.registry import get_record
from upvid.models.load import load_model
from tests.models import parity

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "basicvsrpp"
NAMES = ["basicvsrpp", "basicvsrpp-vimeo-bi", "basicvsrpp-vimeo-bd"]


def _official_weights(case: str, seed: int) -> dict[str, torch.Tensor]:
    shapes = json.loads((FIX / f"official_keys_{case}.json").read_text())
    return parity.numpy_weights_for_shapes(shapes, seed)


@pytest.mark.parametrize("case", ["small", "full"])
def test_parity(case):
    meta = json.loads((FIX / "meta.json").read_text())[case]
    data = load_file(str(FIX / f"{case}.safetensors"))
    net = BasicVSRPlusPlus(**meta["config"]).eval()
    net.load_state_dict(convert_official(_official_weights(case, meta["seed"])), strict=True)
    parity.assert_close(net, data, meta["tolerance"], meta["output_stride"])


def test_official_keys_convert_and_load_strict():
    shapes = json.loads((FIX / "official_keys_full.json").read_text())
    # an MMEditing checkpoint's state_dict: generator.-prefixed keys, SpyNet buffers, the restorer's counter
    sd = {f"generator.{k}": torch.zeros(s) for k, s in shapes.items()}
    sd["generator.spynet.mean"] = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    sd["generator.spynet.std"] = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    sd["step_counter"] = torch.zeros(1)
    net = BasicVSRPlusPlus(**get_record("basicvsrpp").kwargs)
    converted = convert_official(sd)
    assert set(converted) == set(net.state_dict())
    net.load_state_dict(converted, strict=True)
    # already stripped of the prefix and without SpyNet's constant buffers: still loads
    bare = {k: torch.zeros(s) for k, s in shapes.items()}
    net.load_state_dict(convert_official(bare), strict=True)
    assert torch.allclose(net.spynet.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params == sum(torch.Size(s).numel() for s in shapes.values())
    for name in NAMES:
        assert get_record(name).params == n_params


def test_load_model_small_input_shapes():
    # below the reference's 64 px minimum: padded internally, cropped back
    model = load_model("basicvsrpp", pretrained=False)
    with torch.no_grad():
        y = model(torch.rand(1, 2, 3, 32, 36))
    assert y.shape == (1, 2, 3, 128, 144)
    assert torch.isfinite(y).all()


def test_single_frame_and_bad_shapes():
    net = BasicVSRPlusPlus(mid_channels=8, num_blocks=1).eval()
    with torch.no_grad():
        y = net(torch.rand(1, 1, 3, 12, 1))
    assert y.shape == (1, 1, 3, 48, 4)
    with pytest.raises(ModelInputError):
        net(torch.rand(1, 3, 4, 64, 64))
    with pytest.raises(ModelInputError):
        net(torch.rand(3, 3, 64, 64))


def to_basicsr_layout(mmedit: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An MMEditing BasicVSR++ state dict rewritten as BasicSR's basicvsrpp_arch.py names it:
    ``upconv1``/``upconv2`` for the PixelShufflePack convs, SpyNet's Sequential numbering
    (``basic_module.{i}.basic_module.{2j}``) for mmedit's ConvModules."""
    out = {}
    for k, v in mmedit.items():
        k = k.replace("upsample1.upsample_conv.", "upconv1.").replace("upsample2.upsample_conv.", "upconv2.")
        if k.startswith("spynet.") and ".conv." in k:
            head, tail = k.split(".conv.")
            p = head.split(".")
            k = f"spynet.basic_module.{p[2]}.basic_module.{int(p[4]) * 2}.{tail}"
        out[k] = v
    return out


@pytest.mark.parametrize("case", ["small", "full"])
def test_parity_basicsr_layout(case):
    """The same official weights saved in BasicSR's layout load strictly and give the official output."""
    from upvid.models.basicvsrpp import is_basicsr_layout

    meta = json.loads((FIX / "meta.json").read_text())[case]
    data = load_file(str(FIX / f"{case}.safetensors"))
    mmedit = _official_weights(case, meta["seed"])
    basicsr = to_basicsr_layout(mmedit)
    assert is_basicsr_layout(basicsr) and not is_basicsr_layout(mmedit)
    assert "upconv1.weight" in basicsr and "spynet.basic_module.0.basic_module.8.weight" in basicsr
    net = BasicVSRPlusPlus(**meta["config"]).eval()
    net.load_state_dict(convert_official(basicsr), strict=True)
    parity.assert_close(net, data, meta["tolerance"], meta["output_stride"])
    ref = BasicVSRPlusPlus(**meta["config"]).eval()
    ref.load_state_dict(convert_official(mmedit), strict=True)
    for (k, a), b in zip(net.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), k
