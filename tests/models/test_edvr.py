"""EDVR (upvid.models.edvr) against BasicSR's edvr_arch.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from upvid.errors import ModelInputError
from upvid.models.edvr import EDVR, convert_official
from upvid.models.registry import get_record
from upvid.models.load import load_model
from tests.models import parity

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "edvr"


def _meta(case: str) -> dict:
    return json.loads((FIX / "meta.json").read_text())[case]


def test_parity_small_config():
    meta = _meta("small")
    data = load_file(str(FIX / "small.safetensors"))
    net = EDVR(**meta["config"]).eval()
    net.load_state_dict(convert_official(load_file(str(FIX / meta["weights"]))), strict=True)
    parity.assert_close(net, data, meta["tolerance"])


def test_parity_full_size_edvr_m():
    meta = _meta("full_m")
    data = load_file(str(FIX / "full_m.safetensors"))
    net = EDVR(**meta["config"]).eval()
    net.load_state_dict(parity.numpy_weights(net, meta["seed"]), strict=True)
    parity.assert_close(net, data, meta["tolerance"])


@pytest.mark.parametrize("name,keys_file", [("edvr-m", "official_keys_edvr_m.json"),
                                            ("edvr-l", "official_keys_edvr_l.json")])
def test_official_keys_convert_and_load_strict(name, keys_file):
    official = json.loads((FIX / keys_file).read_text())
    sd = {k: torch.zeros(shape) for k, shape in official.items()}
    rec = get_record(name)
    net = EDVR(**rec.kwargs)
    converted = convert_official(sd)
    assert set(converted) == set(net.state_dict())
    net.load_state_dict(converted, strict=True)
    assert sum(p.numel() for p in net.parameters()) == rec.params


@pytest.mark.parametrize("name", ["edvr-m", "edvr-l"])
def test_load_model_shapes(name):
    model = load_model(name, pretrained=False)
    x = torch.rand(1, 5, 3, 30, 34)  # not multiples of 4: the Upscaler pads
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 1, 3, 120, 136)
    assert torch.isfinite(y).all()


def test_bad_inputs_raise():
    net = EDVR(num_feat=16, num_extract_block=1, num_reconstruct_block=1).eval()
    with pytest.raises(ModelInputError):
        net(torch.rand(1, 5, 3, 18, 16))
    with pytest.raises(ModelInputError):
        net(torch.rand(1, 3, 3, 16, 16))
    with pytest.raises(ModelInputError):
        load_model("edvr-m", pretrained=False)(torch.rand(1, 3, 3, 16, 16))


def basicsr_frame_indices(centre: int, n: int, num_frames: int, padding: str) -> list[int]:
    """The test oracle: BasicSR's ``generate_frame_indices`` (basicsr/data/data_util.py) rule for
    the window of ``num_frames`` around ``centre`` in a sequence of ``n`` frames."""
    last, r = n - 1, num_frames // 2
    out = []
    for i in range(centre - r, centre + r + 1):
        if i < 0:
            j = {"replicate": 0, "reflection": -i, "reflection_circle": centre + r - i}[padding]
        elif i > last:
            j = {"replicate": last, "reflection": 2 * last - i, "reflection_circle": (centre - r) - (i - last)}[padding]
        else:
            j = i
        out.append(j)
    return out


@pytest.mark.parametrize("name", ["edvr-m", "edvr-l"])
def test_sequence_ends_follow_basicsr_reflection_circle(name):
    """Every output frame, the first and last two included, equals the network on the window
    BasicSR's EDVR test protocol (``padding: reflection_circle``) builds."""
    from upvid.engine import Engine, EngineConfig

    torch.manual_seed(0)
    model = load_model(name, pretrained=False)
    assert model.record.temporal_padding == "reflection_circle"
    x = torch.rand(7, 3, 16, 16)
    frames = [(f.permute(1, 2, 0) * 255).round().byte().numpy() for f in x]
    engine = Engine(model, EngineConfig.for_model(model, tile=0))
    got = list(engine.run(frames))
    lr = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in frames])
    with torch.no_grad():
        for c in (0, 1, 3, 5, 6):
            want = model(lr[basicsr_frame_indices(c, 7, 5, "reflection_circle")][None])[0, 0]
            want = (want.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            assert (got[c].astype(int) - want.astype(int)).__abs__().max() <= 1, c
