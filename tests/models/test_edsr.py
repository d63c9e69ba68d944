"""EDSR (upvid.models.edsr) against EDSR-PyTorch's own model code (tests/fixtures/edsr/make_fixture.py)."""

from __future__ import annotations

import pytest
import torch

from upvid.errors import ModelInputError
from upvid.models.edsr import EDSR, convert_official
from upvid.models.load import load_model
from upvid.models.registry import get_record, list_models
from tests.models import parity

CASES = ["small_x2", "small_x3", "small_x4", "baseline_x4"]


@pytest.mark.parametrize("case", CASES)
def test_parity_with_official(case):
    """x2 (one shuffle stage), x3 (9C shuffle), x4 (two stages), res_scale 1 and 0.1, batch of 2."""
    m = parity.meta("edsr", case)
    net = EDSR(**m["config"]).eval()
    net.load_state_dict(parity.numpy_weights(net, m["seed"]), strict=True)
    parity.assert_matches(net, "edsr", case)


@pytest.mark.parametrize("name", [n for n in list_models() if n.startswith("edsr")])
def test_records_build_the_published_networks(name):
    """Key layout of the official .pt files: sub_mean/add_mean, head.0, body.{i}.body.{0,2}, tail.0.{0,2}, tail.1."""
    rec = get_record(name)
    net = EDSR(**rec.kwargs)
    sd = net.state_dict()
    n_blocks, s = rec.kwargs["n_resblocks"], rec.scale
    assert f"body.{n_blocks - 1}.body.2.weight" in sd and f"body.{n_blocks}.weight" in sd
    assert ("tail.0.2.weight" in sd) == (s == 4) and sd["tail.0.0.weight"].shape[0] == (9 if s == 3 else 4) * rec.kwargs["n_feats"]
    assert sd["sub_mean.bias"].tolist() == pytest.approx([-114.444, -111.4605, -103.02], abs=1e-3)  # -255 * DIV2K mean
    assert rec.weights["sha256_prefix"] in rec.weights["filename"] and rec.input_range == 255.0
    net.load_state_dict(convert_official({"module." + k: v for k, v in sd.items()}), strict=True)


def test_convert_rejects_other_checkpoints():
    with pytest.raises(ValueError, match="not an EDSR"):
        convert_official({"conv_first.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="scale 5"):
        EDSR(scale=5)
    with pytest.raises(ModelInputError):
        EDSR(n_resblocks=1, n_feats=8)(torch.zeros(1, 1, 4, 4))


def test_upscaler_scales_range_and_size():
    """Through the Upscaler: [0, 1] in, the network sees [0, 255]; x3 output for an odd size."""
    model = load_model("edsr-baseline-x3", pretrained=False)
    net = model.net
    x = torch.rand(1, 1, 3, 7, 9)
    with torch.no_grad():
        y = model(x)
        ref = net(x[:, 0] * 255) / 255
    assert y.shape == (1, 1, 3, 21, 27)
    assert torch.allclose(y[:, 0], ref, atol=1e-5)
