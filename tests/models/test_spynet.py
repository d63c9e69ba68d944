"""SpyNet and flow_warp (upvid.models.blocks) against BasicSR's spynet_arch.py / arch_util.py."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from upvid.models.flow import SpyNet, flow_warp
from tests.models import parity

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "spynet"


def test_spynet_parity():
    meta = json.loads((FIX / "meta.json").read_text())["pair"]
    data = load_file(str(FIX / "pair.safetensors"))
    net = SpyNet().eval()
    net.load_state_dict(parity.numpy_weights(net, meta["seed"]), strict=True)
    with torch.no_grad():
        flow = net(data["ref"], data["supp"])
    err = (flow - data["flow"]).abs().max().item()
    assert err <= meta["tolerance"], err
    assert data["flow"].abs().max() > 0.1  # a non-trivial flow was compared


def test_spynet_small_inputs():
    # Inputs <= 32 px make the coarsest pyramid level 1 pixel (BasicSR's SpyNet fails there).
    net = SpyNet().eval()
    for h, w in [(32, 32), (8, 20), (1, 1)]:
        with torch.no_grad():
            flow = net(torch.rand(2, 3, h, w), torch.rand(2, 3, h, w))
        assert flow.shape == (2, 2, h, w) and torch.isfinite(flow).all()


def test_flow_warp_integer_shift():
    x = torch.rand(1, 4, 6, 7)
    flow = torch.zeros(1, 6, 7, 2)
    flow[..., 0] = 1.0  # sample one pixel to the right
    y = flow_warp(x, flow)
    assert torch.allclose(y[..., :-1], x[..., 1:], atol=1e-6)
    assert y[..., -1].abs().max() == 0  # zeros padding outside
