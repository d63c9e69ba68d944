"""BasicVSR (upvid.models.basicvsr) against BasicSR's basicvsr_arch.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from upvid.models.basicvsr import BasicVSR, convert_official
from upvid.models.registry import get_record
from upvid.models.load import load_model
from tests.models import parity

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "basicvsr"


@pytest.mark.parametrize("case", ["small", "full"])
def test_parity(case):
    meta = json.loads((FIX / "meta.json").read_text())[case]
    data = load_file(str(FIX / f"{case}.safetensors"))
    net = BasicVSR(**meta["config"]).eval()
    net.load_state_dict(parity.numpy_weights(net, meta["seed"]), strict=True)
    parity.assert_close(net, data, meta["tolerance"])


def test_official_keys_convert_and_load_strict():
    official = json.loads((FIX / "official_keys.json").read_text())
    sd = {k: torch.zeros(shape) for k, shape in official.items()}
    net = BasicVSR(**get_record("basicvsr").kwargs)
    converted = convert_official(sd)
    assert set(converted) == set(net.state_dict())
    net.load_state_dict(converted, strict=True)
    # a checkpoint without SpyNet's constant buffers still loads
    no_buffers = {k: v for k, v in sd.items() if k not in ("spynet.mean", "spynet.std")}
    net.load_state_dict(convert_official(no_buffers), strict=True)
    assert torch.allclose(net.spynet.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    assert sum(p.numel() for p in net.parameters()) == get_record("basicvsr").params


@pytest.mark.parametrize("name,t", [("basicvsr", 3), ("basicvsr-vimeo-bd", 1)])
def test_load_model_shapes(name, t):
    model = load_model(name, pretrained=False)
    with torch.no_grad():
        y = model(torch.rand(1, t, 3, 32, 28))
    assert y.shape == (1, t, 3, 128, 112)
    assert torch.isfinite(y).all()
