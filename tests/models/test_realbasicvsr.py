"""RealBasicVSR (upvid.models.realbasicvsr) against mmagic's real_basicvsr_net.py, random weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from upvid.models.realbasicvsr import RealBasicVSR, convert_official
from upvid.models.registry import build_network, get_record
from tests.models import parity

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "realbasicvsr"


@pytest.mark.parametrize("case", ["once", "thrice"])
def test_parity_with_the_official_network(case):
    """The official keys (as the released checkpoint stores them, under ``generator_ema.`` next
    to a discriminator) convert and load strictly; one and three cleaning passes match."""
    meta = json.loads((FIX / "meta.json").read_text())[case]
    shapes = json.loads((FIX / f"official_keys_{case}.json").read_text())
    official = parity.numpy_weights_for_shapes(shapes, meta["seed"])
    ckpt = {f"generator_ema.{k}": v for k, v in official.items()}
    ckpt.update({f"generator.{k}": torch.zeros_like(v) for k, v in official.items()})
    ckpt["discriminator.conv0.weight"] = torch.zeros(1)
    c = meta["config"]
    net = RealBasicVSR(c["mid_channels"], c["num_propagation_blocks"], c["num_cleaning_blocks"],
                       c["dynamic_refine_thres"]).eval()
    net.load_state_dict(convert_official(ckpt), strict=True)
    data = load_file(str(FIX / "rand.safetensors"))
    parity.assert_close(net, data, meta["tolerance"], meta["output_stride"], key=f"{case}.")


def test_record_builds_the_published_network():
    rec = get_record("realbasicvsr")
    net = build_network(rec)
    assert sum(p.numel() for p in net.parameters()) == rec.params
    assert rec.kwargs["dynamic_refine_thres"] == 5  # the official test value
    assert rec.weights["size"] == 148_239_017
