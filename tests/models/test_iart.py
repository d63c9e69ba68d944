"""IART (upvid.models.iart) against the official kai422/IART code (fixtures: tests/fixtures/iart)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from upvid.errors import ModelInputError
from upvid.models.iart import IART, WindowAttention3D, convert_official
from upvid.models.registry import get_record
from upvid.models.load import load_model
from tests.models import parity

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "iart"


@pytest.fixture(autouse=True)
def _one_thread():
    """IART runs thousands of small ops: on a shared 2-core box one intra-op thread is far faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def iart_weights(net: nn.Module, seed: int) -> dict[str, Tensor]:
    """Deterministic weights: ``numpy_weights`` (parity.py), LayerNorm weights shifted by +1.

    (PyTorch initialises LayerNorm weights to 1; a weight of ``1 + U(-1/sqrt(C), 1/sqrt(C))`` keeps
    the transformer's signal at a realistic scale.) Buffers keep the network's values.
    """
    sd = parity.numpy_weights(net, seed)
    for key in sd:
        if re.search(r"norm\d?\.weight$", key):
            sd[key] = sd[key] + 1.0
    return sd


@pytest.mark.parametrize("case", ["small", "full"])
def test_parity(case):
    meta = json.loads((FIX / "meta.json").read_text())[case]
    data = load_file(str(FIX / f"{case}.safetensors"))
    net = IART(**meta["config"]).eval()
    sd = iart_weights(net, meta["seed"])
    if (FIX / f"{case}_weights.safetensors").exists():
        committed = load_file(str(FIX / f"{case}_weights.safetensors"))
        assert all(torch.equal(committed[k], sd[k]) for k in committed)  # the committed weights = the generator
        sd.update(committed)
    net.load_state_dict(sd, strict=True)
    parity.assert_close(net, data, meta["tolerance"])


def test_window_attention_matches_softmax_reference():
    """SDPA with the bias (+ shift mask) as attn_mask == the reference's explicit softmax, to 1e-5."""
    torch.manual_seed(0)
    att = WindowAttention3D(24, (3, 4, 4), 2).eval()
    nn.init.uniform_(att.relative_position_bias_table, -1, 1)
    n = 48
    x = torch.randn(6, n, 24)
    regions = torch.randint(0, 3, (3, n))
    with torch.no_grad():
        got_plain, got_shift = att(x), att(x, regions)
        q, k, v = att.qkv(x).view(6, n, 3, 2, 12).permute(2, 0, 3, 1, 4)
        logits = (q * att.scale) @ k.transpose(-2, -1)
        bias = att.relative_position_bias_table[att.relative_position_index.reshape(-1)].view(n, n, 2).permute(2, 0, 1)
        logits = logits + bias
        mask = (regions[:, :, None] != regions[:, None, :]).float() * -100.0
        ref = []
        for lg in (logits, (logits.view(2, 3, 2, n, n) + mask[None, :, None]).view(6, 2, n, n)):
            ref.append(att.proj((lg.softmax(-1) @ v).transpose(1, 2).reshape(6, n, 24)))
    assert (got_plain - ref[0]).abs().max() < 1e-5
    assert (got_shift - ref[1]).abs().max() < 1e-5


def test_official_keys_convert_and_load_strict():
    official = json.loads((FIX / "official_keys.json").read_text())
    sd = {k: torch.zeros(shape) for k, shape in official.items()}
    rec = get_record("iart")
    net = IART(**rec.kwargs)
    assert set(official) == set(net.state_dict())
    converted = convert_official(sd)
    assert set(converted) == set(net.state_dict())
    net.load_state_dict(converted, strict=True)
    # DDP prefix, stray keys and missing constant buffers are handled
    consts = ("spynet.mean", "spynet.std", "implicit_warp.position_bias", "implicit_warp.window_idx_offset")
    slim = {f"module.{k}": v for k, v in sd.items() if k not in consts and "relative_position_index" not in k}
    slim["module.step_counter"] = torch.zeros(1)
    converted = convert_official(slim)
    assert set(converted) == set(net.state_dict())
    fresh = IART(**rec.kwargs).state_dict()
    for key in consts + ("swin_backbone.forward_2.layers.2.residual_group.blocks.5.attn.relative_position_index",):
        assert torch.allclose(converted[key].float(), fresh[key].float(), atol=1e-6), key
    assert sum(p.numel() for p in net.parameters()) == rec.params


@pytest.mark.parametrize("name", ["iart", "iart-reds-n6", "iart-vimeo", "iart-vimeo-bd"])
def test_records(name):
    rec = get_record(name)
    assert rec.family == "recurrent" and rec.scale == 4 and rec.weights
    assert rec.weights["spynet"]["prefix"] == "spynet."


def test_load_model_shapes_and_errors():
    model = load_model("iart", pretrained=False)
    # shrink the transformer for speed: one block per pass keeps every code path
    for fusion in model.net.swin_backbone.values():
        for layer in fusion.layers:
            del layer.residual_group.blocks[1:]
    with torch.no_grad():
        y = model(torch.rand(1, 2, 3, 12, 10))
        one = model(torch.rand(1, 1, 3, 9, 8))
    assert y.shape == (1, 2, 3, 48, 40) and torch.isfinite(y).all()
    assert one.shape == (1, 1, 3, 36, 32) and torch.isfinite(one).all()
    with pytest.raises(ModelInputError):
        model.net(torch.rand(1, 2, 4, 8, 8))
    with pytest.raises(ModelInputError):
        model.net(torch.rand(2, 3, 8, 8))


def test_implicit_warp_zero_flow_is_local():
    """With a zero flow every query attends to its own pixel and its right/lower neighbours only."""
    net = IART(mid_channels=8, embed_dim=12, depths=[1], num_heads=[2], window_size=[3, 4, 4]).eval()
    src = torch.zeros(1, 12, 6, 6)
    src[..., 0, 0] = 1.0  # only pixel (0, 0) carries signal
    dst = torch.rand(1, 12, 6, 6)
    with torch.no_grad():
        out = net.implicit_warp(src, dst, torch.zeros(1, 6, 6, 2))
        base = net.implicit_warp(torch.zeros_like(src), dst, torch.zeros(1, 6, 6, 2))
    changed = (out - base).abs().sum(1)[0] > 1e-6
    assert changed[0, 0] and changed.sum() == 1  # (0,0) is in the 2x2 window of (0,0) only
