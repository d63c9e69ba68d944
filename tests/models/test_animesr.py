"""AnimeSR / MSRSWVSR (upvid.models.animesr) against TencentARC/AnimeSR's vsr_arch.py, random weights."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from upvid.models.animesr import MSRSWVSR
from upvid.models.registry import build_network, get_record
from upvid.models.load import load_model

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "animesr"


def _rand_init():
    spec = importlib.util.spec_from_file_location("basicsr_rand_init", Path(__file__).with_name("basicsr_rand_init.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("case", ["small", "full"])
def test_parity_with_the_official_network(case):
    meta = json.loads((FIX / "meta.json").read_text())[case]
    data = load_file(str(FIX / "rand.safetensors"))
    net = MSRSWVSR(**meta["config"]).eval()
    net.load_state_dict(_rand_init().numpy_weights(net, meta["seed"]), strict=True)
    assert len(net.state_dict()) == meta["keys"]
    with torch.no_grad():
        y = net(data[f"{case}.input"])[..., ::meta["output_stride"], ::meta["output_stride"]]
    assert (y - data[f"{case}.output"]).abs().max().item() <= meta["tolerance"]


def test_record_and_size_rule():
    rec = get_record("animesr-v2")
    assert sum(p.numel() for p in build_network(rec).parameters()) == rec.params
    assert rec.size_multiple == 4 and rec.family == "recurrent"
    model = load_model("animesr-v2", pretrained=False)
    model.net = MSRSWVSR(num_feat=8, num_block=(2, 1, 1)).eval()
    with torch.no_grad():
        y = model(torch.rand(1, 2, 3, 10, 13))  # reflect-padded to 12x16, cropped back
    assert y.shape == (1, 2, 3, 40, 52)
