"""RVRT (upvid.models.rvrt) against the official network_rvrt.py (CUDA op ported to PyTorch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from upvid.errors import ModelInputError
from upvid.models.registry import get_record
from upvid.models.load import load_model
from upvid.models.rvrt import RVRT, convert_official, guided_deformable_attention
from tests.models import parity

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "rvrt"
NAMES = ["rvrt", "rvrt-vimeo-bi", "rvrt-vimeo-bd"]


def _official_weights(case: str, seed: int) -> dict[str, torch.Tensor]:
    shapes = json.loads((FIX / f"official_keys_{case}.json").read_text())
    sd = parity.numpy_weights_for_shapes(shapes, seed)
    # as make_fixture.py: LayerNorm scales (RVRT's only 1-D weights) around 1
    return {k: v + 1.0 if v.ndim == 1 and k.endswith(".weight") else v for k, v in sd.items()}


@pytest.mark.parametrize("case", ["small", "full"])
def test_parity(case):
    meta = json.loads((FIX / "meta.json").read_text())[case]
    data = load_file(str(FIX / f"{case}.safetensors"))
    net = RVRT(**meta["config"]).eval()
    net.load_state_dict(convert_official(_official_weights(case, meta["seed"])), strict=True)
    parity.assert_close(net, data, meta["tolerance"], meta["output_stride"])


def test_official_keys_convert_and_load_strict():
    shapes = json.loads((FIX / "official_keys_full.json").read_text())
    # an official checkpoint's 'params': parameters plus the constant buffers
    sd = {k: torch.zeros(s) for k, s in shapes.items()}
    sd["spynet.mean"] = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    sd["spynet.std"] = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    sd["feat_extract.main.5.0.residual_group.blocks.0.attn.relative_position_index"] = torch.zeros(64, 64)
    net = RVRT(**get_record("rvrt").kwargs)
    converted = convert_official(sd)
    assert set(converted) == set(net.state_dict())
    net.load_state_dict(converted, strict=True)
    # without the buffers: still loads
    net.load_state_dict(convert_official({k: torch.zeros(s) for k, s in shapes.items()}), strict=True)
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params == sum(torch.Size(s).numel() for s in shapes.values()) == 10_782_295
    for name in NAMES:
        rec = get_record(name)
        assert rec.params == n_params and rec.kwargs == get_record("rvrt").kwargs


def test_load_model_shapes_odd_clip_and_small_frame():
    model = load_model("rvrt", pretrained=False)
    with torch.no_grad():
        y = model(torch.rand(1, 3, 3, 12, 20))  # odd T, below the window and SpyNet's 32 px
    assert y.shape == (1, 3, 3, 48, 80)
    assert torch.isfinite(y).all()


def test_odd_clip_is_last_frame_padding():
    torch.manual_seed(0)
    net = RVRT(num_blocks=(1, 1, 1), depths=(2, 2, 2), embed_dims=(24, 24, 24), num_heads=(2, 2, 2),
               deformable_groups=4, attention_heads=4).eval()
    x = torch.rand(1, 3, 3, 16, 16)
    with torch.no_grad():
        y_odd = net(x)
        y_pad = net(torch.cat([x, x[:, -1:]], 1))[:, :3]
        y_one = net(x[:, :1])
    assert y_odd.shape == (1, 3, 3, 64, 64) and y_one.shape == (1, 1, 3, 64, 64)
    assert torch.allclose(y_odd, y_pad, atol=1e-6)


def test_bad_shapes():
    net = RVRT(num_blocks=(1, 1, 1), depths=(1, 1, 1), embed_dims=(24, 24, 24), num_heads=(2, 2, 2),
               deformable_groups=4, attention_heads=4).eval()
    with pytest.raises(ModelInputError):
        net(torch.rand(1, 2, 4, 16, 16))
    with pytest.raises(ModelInputError):
        net(torch.rand(2, 3, 16, 16))


def _gather_reference(q, kv, offsets, heads, groups):
    """Direct bilinear gather (the CUDA kernel's rules) for a 3x3 window: (N, P, H, W)."""
    n, p, h, w = q.shape
    cg = 2 * p // groups
    d = p // heads
    keys = []
    for s, off in enumerate(offsets):
        src = kv[s]
        off = off.view(n, groups, 9, 2, h, w)
        cols = []
        for k in range(9):
            ys = torch.arange(h).view(1, 1, h, 1) + (k // 3 - 1) + off[:, :, k, 0]  # (n, G, H, W)
            xs = torch.arange(w).view(1, 1, 1, w) + (k % 3 - 1) + off[:, :, k, 1]
            y0, x0 = ys.floor(), xs.floor()
            val = 0
            for dy in (0, 1):
                for dx in (0, 1):
                    yy, xx = y0 + dy, x0 + dx
                    wt = (1 - (ys - yy).abs()) * (1 - (xs - xx).abs())
                    ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
                    idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).long()  # (n, G, H, W)
                    g = torch.gather(src.view(n, groups, cg, h * w), 3,
                                     idx.view(n, groups, 1, h * w).expand(n, groups, cg, h * w)).view(n, groups, cg, h, w)
                    val = val + torch.where(ok.unsqueeze(2), g, 0) * wt.unsqueeze(2)
            cols.append(val.reshape(n, 2 * p, h, w))
        keys.append(torch.stack(cols, 2))  # (n, 2P, 9, H, W)
    kk = torch.cat(keys, 2)  # (n, 2P, S*9, H, W)
    kt, vt = kk[:, :p].reshape(n, heads, d, -1, h, w), kk[:, p:].reshape(n, heads, d, -1, h, w)
    logits = (q.view(n, heads, d, 1, h, w) * d**-0.5 * kt).sum(2)
    attn = logits.softmax(2)
    return (attn.unsqueeze(2) * vt).sum(3).reshape(n, p, h, w)


def test_guided_deformable_attention_matches_direct_gather():
    g = torch.Generator().manual_seed(3)
    n, p, h, w, heads, groups = 2, 16, 7, 9, 4, 4
    q = torch.randn(n, p, h, w, generator=g)
    kv = torch.randn(2, n, 2 * p, h, w, generator=g)
    # offsets up to +-6 px: many samples straddle or leave the frame
    offsets = [torch.randn(n, groups * 18, h, w, generator=g) * 4 for _ in range(2)]
    y = guided_deformable_attention(q, kv, offsets, heads, groups)
    ref = _gather_reference(q, kv, offsets, heads, groups)
    assert (y - ref).abs().max().item() < 1e-5
