"""AnimeSR / MSRSWVSR (upvid.models.animesr) against TencentARC/AnimeSR's vsr_arch.py, random weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from upvid.models.animesr import MSRSWVSR
from upvid.models.registry import build_network, get_record
from upvid.models.load import load_model
from tests.models import parity

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "animesr"


@pytest.mark.parametrize("case", ["small", "full"])
def test_parity_with_the_official_network(case):
    meta = json.loads((FIX / "meta.json").read_text())[case]
    data = load_file(str(FIX / "rand.safetensors"))
    net = MSRSWVSR(**meta["config"]).eval()
    net.load_state_dict(parity.numpy_weights(net, meta["seed"]), strict=True)
    assert len(net.state_dict()) == meta["keys"]
    parity.assert_close(net, data, meta["tolerance"], meta["output_stride"], key=f"{case}.")


def test_record_and_size_rule():
    rec = get_record("animesr-v2")
    assert sum(p.numel() for p in build_network(rec).parameters()) == rec.params
    assert rec.size_multiple == 4 and rec.family == "recurrent"
    model = load_model("animesr-v2", pretrained=False)
    model.net = MSRSWVSR(num_feat=8, num_block=(2, 1, 1)).eval()
    with torch.no_grad():
        y = model(torch.rand(1, 2, 3, 10, 13))  # reflect-padded to 12x16, cropped back
    assert y.shape == (1, 2, 3, 40, 52)
