"""TDAN (upvid.models.tdan) against mmagic's TDANNet (tests/fixtures/tdan/make_fixture.py)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from upvid.errors import ModelInputError
from upvid.models.load import load_model
from upvid.models.registry import get_record
from upvid.models.tdan import TDAN, convert_official
from tests.models import parity


@pytest.mark.parametrize("case", ["small", "full"])
def test_parity_with_official(case):
    """HR centre frame and the aligned LR frames (the official forward's second output)."""
    m = parity.meta("tdan", case)
    net = TDAN(**m["config"]).eval()
    sd = parity.numpy_weights(net, m["seed"])
    assert len(sd) == m["keys"] and sum(v.numel() for v in sd.values()) == m["params"]
    net.load_state_dict(sd, strict=True)
    data = load_file(str(parity.FIXTURES / "tdan" / f"{case}.safetensors"))
    with torch.no_grad():
        y, aligned = net.forward_with_aligned(data["input"])
    assert (y - data["output"]).abs().max().item() <= m["tolerance"]
    assert (aligned - data["aligned"]).abs().max().item() <= m["tolerance"]
    assert torch.equal(aligned[:, 2], data["input"][:, 2])  # the centre frame passes unchanged


def test_mmagic_checkpoint_layout_converts():
    """mmagic saves {'state_dict': {'generator.<key>': ...}}; the loader unwraps, convert strips the prefix."""
    rec = get_record("tdan")
    assert rec.weights["key"] == "state_dict" and rec.frames == 5 and rec.input_mean == 0.5
    net = TDAN(**rec.kwargs)
    official = {"generator." + k: v for k, v in net.state_dict().items()}
    assert "generator.align_1.conv_offset.weight" in official and "generator.reconstruct.4.bias" not in official
    net.load_state_dict(convert_official(official), strict=True)
    with pytest.raises(ValueError, match="not a TDAN"):
        convert_official({"generator.backbone.conv.weight": torch.zeros(1)})


def test_upscaler_feeds_the_preprocessed_range():
    """The Upscaler subtracts mmagic's mean 0.5 and adds it back; wrong window lengths are typed errors."""
    model = load_model("tdan", pretrained=False)
    x = torch.rand(1, 5, 3, 8, 12)
    with torch.no_grad():
        y = model(x)
        ref = model.net(x - 0.5) + 0.5
    assert y.shape == (1, 1, 3, 32, 48)
    assert torch.allclose(y[:, 0], ref, atol=1e-6)
    with pytest.raises(ModelInputError):
        model(torch.rand(1, 3, 3, 8, 12))
    with pytest.raises(ModelInputError):
        model.net(torch.rand(1, 5, 3, 8, 12)[:, :3])
