"""PSRT-recurrent (upvid.models.psrt) against the official XPixelGroup/RethinkVSRAlignment network."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from upvid.errors import ModelInputError
from upvid.models.psrt import PSRTRecurrent, convert_official, patch_align_warp
from upvid.models.registry import get_record
from upvid.models.load import load_model

from tests.models import parity

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "psrt"
NAMES = ["psrt-recurrent", "psrt-recurrent-vimeo"]


def _official_weights(case: str, seed: int) -> dict[str, torch.Tensor]:
    spec = importlib.util.spec_from_file_location("psrt_make_fixture", FIX / "make_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    shapes = json.loads((FIX / f"official_keys_{case}.json").read_text())
    return mod.official_weights(shapes, seed)


def _meta(case: str) -> dict:
    return json.loads((FIX / "meta.json").read_text())[case]


def test_parity_small():
    # 3 frames (second-order branch, flows of several pixels), width not a multiple of 8
    meta = _meta("small")
    data = load_file(str(FIX / "small.safetensors"))
    net = PSRTRecurrent(**meta["config"]).eval()
    net.load_state_dict(convert_official(_official_weights("small", meta["seed"])), strict=True)
    parity.assert_close(net, data, meta["tolerance"], meta["output_stride"])


@pytest.mark.slow
def test_parity_full_size_through_load_model():
    # the official configuration, built from the weights.toml record, behind the Upscaler
    # (slow: four 13.4 M-parameter Transformer passes over a 64x64 frame, ~10-20 s on 2 CPU cores)
    meta = _meta("full")
    data = load_file(str(FIX / "full.safetensors"))
    model = load_model("psrt-recurrent", pretrained=False)
    assert meta["config"] == {k: list(v) if isinstance(v, (list, tuple)) else v
                              for k, v in get_record("psrt-recurrent").kwargs.items()}
    model.net.load_state_dict(convert_official(_official_weights("full", meta["seed"])), strict=True)
    with torch.no_grad():
        y = model(data["input"])
    assert y.shape == (1, 1, 3, 256, 256)
    s = meta["output_stride"]
    err = (y[..., ::s, ::s] - data["output"]).abs().max().item()
    assert err <= meta["tolerance"], err


def test_official_keys_convert_and_load_strict():
    shapes = json.loads((FIX / "official_keys_full.json").read_text())
    net = PSRTRecurrent(**get_record("psrt-recurrent").kwargs)
    ref = net.state_dict()
    # a BasicSR checkpoint's params: every parameter plus the persistent buffers
    sd = {k: torch.zeros(s) for k, s in shapes.items()}
    for k, v in ref.items():
        if k not in sd:
            sd[k] = v.clone()
    assert set(sd) == set(ref)
    converted = convert_official(sd)
    assert set(converted) == set(ref)
    net.load_state_dict(converted, strict=True)
    # parameters only (no buffers) and without the never-used convs: still loads, buffers rebuilt
    bare = {k: torch.zeros(s) for k, s in shapes.items()
            if not any(f".{c}." in k for c in ("conv_first", "conv_first_feat", "conv_before_upsample"))
            or not k.startswith("patch_align.")}
    converted = convert_official(bare)
    assert set(converted) == set(ref)
    for k, v in ref.items():
        if k.endswith("relative_position_index") or k in ("spynet.mean", "spynet.std"):
            assert torch.equal(converted[k], v), k
    net.load_state_dict(converted, strict=True)
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params == sum(torch.Size(s).numel() for s in shapes.values()) == 13_366_943
    for name in NAMES:
        assert get_record(name).params == n_params


def test_small_input_single_frame_and_bad_shapes():
    net = PSRTRecurrent(mid_channels=8, embed_dim=12, depths=(1,), num_heads=(2,)).eval()
    with torch.no_grad():
        y = net(torch.rand(1, 2, 3, 20, 36))  # below the reference's 64 px: padded, cropped back
        assert y.shape == (1, 2, 3, 80, 144) and torch.isfinite(y).all()
        y = net(torch.rand(1, 1, 3, 9, 1))
        assert y.shape == (1, 1, 3, 36, 4)
    with pytest.raises(ModelInputError):
        net(torch.rand(1, 3, 4, 64, 64))
    with pytest.raises(ModelInputError):
        net(torch.rand(3, 3, 64, 64))


def test_patch_align_moves_whole_patches():
    x = torch.arange(2 * 16 * 24, dtype=torch.float32).view(1, 2, 16, 24)
    flow = torch.zeros(1, 2, 16, 24)
    flow[:, 0, :8, :8] = 2.0  # the top-left patch reads 2 px to the right
    flow[:, 0, :8, 8:16] = torch.linspace(0.0, 2.0, 8)  # mean 1.0: the whole patch moves by 1 px
    y = patch_align_warp(x, flow)
    assert torch.equal(y[..., :8, :8], x[..., :8, 2:10])
    assert torch.equal(y[..., :8, 8:16], x[..., :8, 9:17])
    assert torch.equal(y[..., 8:, :], x[..., 8:, :])


def test_batch_items_are_independent():
    # shifted-window masks are per window of each batch item
    net = PSRTRecurrent(mid_channels=8, embed_dim=16, depths=(2,), num_heads=(2,)).eval()
    x = torch.rand(2, 2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = net(x)
        assert torch.allclose(y[1:], net(x[1:]), atol=1e-5)
