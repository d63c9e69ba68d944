"""RealBasicVSR (upvid.models.realbasicvsr) against mmagic's real_basicvsr_net.py, random weights."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from upvid.models.realbasicvsr import RealBasicVSR, convert_official
from upvid.models.registry import build_network, get_record

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "realbasicvsr"


def _rand_init():
    spec = importlib.util.spec_from_file_location("mmedit_rand_init", Path(__file__).with_name("mmedit_rand_init.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("case", ["once", "thrice"])
def test_parity_with_the_official_network(case):
    """The official keys (as the released checkpoint stores them, under ``generator_ema.`` next
    to a discriminator) convert and load strictly; one and three cleaning passes match."""
    meta = json.loads((FIX / "meta.json").read_text())[case]
    shapes = json.loads((FIX / f"official_keys_{case}.json").read_text())
    official = _rand_init().numpy_weights_for_shapes(shapes, meta["seed"])
    ckpt = {f"generator_ema.{k}": v for k, v in official.items()}
    ckpt.update({f"generator.{k}": torch.zeros_like(v) for k, v in official.items()})
    ckpt["discriminator.conv0.weight"] = torch.zeros(1)
    c = meta["config"]
    net = RealBasicVSR(c["mid_channels"], c["num_propagation_blocks"], c["num_cleaning_blocks"],
                       c["dynamic_refine_thres"]).eval()
    net.load_state_dict(convert_official(ckpt), strict=True)
    data = load_file(str(FIX / "rand.safetensors"))
    with torch.no_grad():
        y = net(data[f"{case}.input"])[..., ::meta["output_stride"], ::meta["output_stride"]]
    assert (y - data[f"{case}.output"]).abs().max().item() <= meta["tolerance"]


def test_record_builds_the_published_network():
    rec = get_record("realbasicvsr")
    net = build_network(rec)
    assert sum(p.numel() for p in net.parameters()) == rec.params
    assert rec.kwargs["dynamic_refine_thres"] == 5  # the official test value
    assert rec.weights["size"] == 148_239_017
