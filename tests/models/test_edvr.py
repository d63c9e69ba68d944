"""EDVR (upvid.models.edvr) against BasicSR's edvr_arch.py."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from upvid.errors import ModelInputError
from upvid.models.edvr import EDVR, convert_official
from upvid.models.registry import get_record, load_model

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "edvr"


def _rand_init():
    spec = importlib.util.spec_from_file_location("basicsr_rand_init", Path(__file__).with_name("basicsr_rand_init.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _meta(case: str) -> dict:
    return json.loads((FIX / "meta.json").read_text())[case]


def test_parity_small_config():
    meta = _meta("small")
    data = load_file(str(FIX / "small.safetensors"))
    net = EDVR(**meta["config"]).eval()
    net.load_state_dict(convert_official(load_file(str(FIX / meta["weights"]))), strict=True)
    with torch.no_grad():
        y = net(data["input"])
    err = (y - data["output"]).abs().max().item()
    assert err <= meta["tolerance"], err


def test_parity_full_size_edvr_m():
    meta = _meta("full_m")
    data = load_file(str(FIX / "full_m.safetensors"))
    net = EDVR(**meta["config"]).eval()
    net.load_state_dict(_rand_init().numpy_weights(net, meta["seed"]), strict=True)
    with torch.no_grad():
        y = net(data["input"])
    err = (y - data["output"]).abs().max().item()
    assert err <= meta["tolerance"], err


@pytest.mark.parametrize("name,keys_file", [("edvr-m", "official_keys_edvr_m.json"),
                                            ("edvr-l", "official_keys_edvr_l.json")])
def test_official_keys_convert_and_load_strict(name, keys_file):
    official = json.loads((FIX / keys_file).read_text())
    sd = {k: torch.zeros(shape) for k, shape in official.items()}
    rec = get_record(name)
    net = EDVR(**rec.kwargs)
    converted = convert_official(sd)
    assert set(converted) == set(net.state_dict())
    net.load_state_dict(converted, strict=True)
    assert sum(p.numel() for p in net.parameters()) == rec.params


@pytest.mark.parametrize("name", ["edvr-m", "edvr-l"])
def test_load_model_shapes(name):
    model = load_model(name, pretrained=False)
    x = torch.rand(1, 5, 3, 30, 34)  # not multiples of 4: the Upscaler pads
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 1, 3, 120, 136)
    assert torch.isfinite(y).all()


def test_bad_inputs_raise():
    net = EDVR(num_feat=16, num_extract_block=1, num_reconstruct_block=1).eval()
    with pytest.raises(ModelInputError):
        net(torch.rand(1, 5, 3, 18, 16))
    with pytest.raises(ModelInputError):
        net(torch.rand(1, 3, 3, 16, 16))
    with pytest.raises(ModelInputError):
        load_model("edvr-m", pretrained=False)(torch.rand(1, 3, 3, 16, 16))
