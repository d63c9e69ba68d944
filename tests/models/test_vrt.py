"""VRT (upvid.models.vrt) against the official network_vrt.py (tests/fixtures/vrt/make_fixture.py)."""

from __future__ import annotations

import hashlib

import pytest
import torch
from safetensors.torch import load_file
from torch.nn import functional as F

from upvid.errors import ModelInputError
from upvid.models.load import load_model
from upvid.models.registry import get_record, list_models
from upvid.models.vrt import VRT, convert_official, sine_position_encoding
from tests.models import parity


@pytest.mark.parametrize("case", ["pa2", "pa4", "pa6"])
def test_parity_with_official(case):
    """Parallel warping over 2, 4 and 6 frames (the four checkpoints' variants), odd clip lengths,
    non-square frames; the same state-dict keys as the reference (buffers aside)."""
    m = parity.meta("vrt", case)
    net = VRT(**m["config"]).eval()
    keys = sorted(net.state_dict())
    assert len(keys) == m["n_keys"] and hashlib.sha1("\n".join(keys).encode()).hexdigest() == m["keys_sha1"]
    net.load_state_dict(parity.numpy_weights(net, m["seed"]), strict=True)
    data = load_file(str(parity.FIXTURES / "vrt" / f"{case}.safetensors"))
    err = parity.assert_matches(net, "vrt", case)
    # the network's share of the output is not negligible next to its upsampled-input skip
    x = data["input"]
    skip = F.interpolate(x, size=(3, 4 * x.shape[-2], 4 * x.shape[-1]), mode="trilinear", align_corners=False)
    assert (data["output"] - skip[..., ::3, ::3]).abs().max() > 0.02 > 100 * err


def test_sine_encoding_matches_its_definition():
    """Rows then columns, sin/cos interleaved, positions (1..n)/n * 2 pi."""
    pe = sine_position_encoding(2, 3, 4)[0]  # (6, 8)
    assert pe.shape == (6, 8)
    y, x = 2 / 2 * 2 * torch.pi, 1 / 3 * 2 * torch.pi  # token 3: row 2, column 1
    assert pe[3, 0].item() == pytest.approx(torch.sin(torch.tensor(y / 1.0)).item(), abs=1e-5)
    assert pe[3, 1].item() == pytest.approx(torch.cos(torch.tensor(y / 1.0)).item(), abs=1e-5)
    assert pe[3, 4].item() == pytest.approx(torch.sin(torch.tensor(x / 1.0)).item(), abs=1e-5)
    assert pe[3, 6].item() == pytest.approx(torch.sin(torch.tensor(x / 100.0)).item(), abs=1e-5)


@pytest.mark.parametrize("name", [n for n in list_models() if n.startswith("vrt")])
def test_records_match_main_test_vrt(name):
    """Each task's network (main_test_vrt.py prepare_model_dataset) and a checkpoint layout that converts."""
    rec = get_record(name)
    task = rec.weights["filename"][:3]
    pa, dg, win = {"001": (2, 12, [6, 8, 8]), "002": (6, 24, [8, 8, 8]), "003": (4, 16, [8, 8, 8]),
                   "004": (4, 16, [8, 8, 8])}[task]
    assert (rec.kwargs["pa_frames"], rec.kwargs["deformable_groups"], rec.kwargs["window_size"]) == (pa, dg, win)
    assert rec.overlap == 2 and rec.tile == 128 and rec.tile_overlap == 20 and rec.clip_blend == "average"
    if name == "vrt":
        net = VRT(**rec.kwargs)
        official = {k: v for k, v in net.state_dict().items()}
        official["stage1.residual_group1.blocks.0.attn.relative_position_index"] = torch.zeros(1)
        official["stage1.residual_group1.blocks.0.attn.position_bias"] = torch.zeros(1)
        net.load_state_dict(convert_official({"params": official}), strict=True)
        with pytest.raises(ValueError, match="not a VRT"):
            convert_official({"fnet.weight": torch.zeros(1)})


def test_size_rules_and_short_clips():
    """Through the Upscaler: a 40x44 frame is padded up to the 1/8-scale window (4 x 8 = 32 here,
    64 for the checkpoints) and cropped back; a 1-frame clip is paired with itself."""
    m = parity.meta("vrt", "pa2")
    net = VRT(**m["config"]).eval()
    with pytest.raises(ModelInputError, match="multiples of 8"):
        net(torch.rand(1, 2, 3, 36, 40))
    with pytest.raises(ModelInputError, match="at least 32x32"):
        net(torch.rand(1, 2, 3, 24, 40))
    model = load_model("vrt", pretrained=False)
    assert model.record.min_size == 64
    with torch.no_grad():
        one = net(torch.rand(1, 1, 3, 32, 32))
    assert one.shape == (1, 1, 3, 128, 128)
