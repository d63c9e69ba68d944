"""RRDBNet (Real-ESRGAN x4plus / x2plus, upvid.models.rrdbnet) against BasicSR's rrdbnet_arch.py,
and the realesr-general-x4v3 denoise interpolation (Real-ESRGAN's dni)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from upvid.errors import UsageError
from upvid.models.registry import _load_toml, build_network, get_record
from upvid.models.load import load_model
from upvid.models.rrdbnet import RRDBNet
from upvid.models.srvgg import SRVGGNetCompact
from tests.models import parity

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "rrdbnet"


@pytest.mark.parametrize("case", ["x4_small", "x2_small", "x4_full"])
def test_parity_with_the_official_network_under_random_weights(case):
    meta = json.loads((FIX / "meta.json").read_text())[case]
    data = load_file(str(FIX / "rand.safetensors"))
    net = RRDBNet(**meta["config"]).eval()
    net.load_state_dict(parity.numpy_weights(net, meta["seed"]), strict=True)
    assert len(net.state_dict()) == meta["keys"]
    parity.assert_close(net, data, meta["tolerance"], meta["output_stride"], key=f"{case}.")


@pytest.mark.parametrize("name,scale", [("realesrgan-x4plus", 4), ("realesrgan-x2plus", 2)])
def test_records_build_the_published_networks(name, scale):
    rec = get_record(name)
    net = build_network(rec)
    assert sum(p.numel() for p in net.parameters()) == rec.params and rec.scale == scale
    assert rec.weights["key"] == "params_ema" and len(rec.weights["sha256"]) == 64
    # the Upscaler pads odd sizes for x2's pixel-unshuffle and crops back
    model = load_model(name, pretrained=False)
    model.net = RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=4).eval()
    with torch.no_grad():
        y = model(torch.rand(1, 1, 3, 9, 11))
    assert y.shape == (1, 1, 3, 9 * scale, 11 * scale)


def _write_pth(path: Path, net) -> None:
    torch.save({"params": net.state_dict()}, path)


def test_denoise_interpolates_the_two_weight_sets(tmp_path, monkeypatch):
    """--denoise D loads D * model + (1 - D) * its wdn twin (default 0.5); 1 is the model alone;
    the strength is checked, and a model without a twin refuses --denoise."""
    kw = dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4, act_type="prelu")
    a, b = SRVGGNetCompact(**kw), SRVGGNetCompact(**kw)
    torch.manual_seed(1)
    for p in b.parameters():
        p.data.uniform_(-0.5, 0.5)
    _write_pth(tmp_path / "gen.pth", a)
    _write_pth(tmp_path / "wdn.pth", b)
    sha = {n: hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("gen.pth", "wdn.pth")}
    kwargs = ", ".join(f"{k} = {v!r}".replace("'", '"') for k, v in kw.items())
    toml = tmp_path / "w.toml"
    toml.write_text(f"""
[models.tiny-gen]
arch = "upvid.models.srvgg:SRVGGNetCompact"
kwargs = {{ {kwargs} }}
family = "sliding-window"
scale = 4
denoise_with = "tiny-wdn"
denoise_default = 0.5
[models.tiny-gen.weights]
filename = "gen.pth"
sha256 = "{sha['gen.pth']}"
key = "params"
[models.tiny-wdn]
arch = "upvid.models.srvgg:SRVGGNetCompact"
kwargs = {{ {kwargs} }}
family = "sliding-window"
scale = 4
[models.tiny-wdn.weights]
filename = "wdn.pth"
sha256 = "{sha['wdn.pth']}"
key = "params"
""")
    monkeypatch.setenv("UPVID_WEIGHTS_TOML", str(toml))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    _load_toml.cache_clear()
    try:
        sa, sb = a.state_dict(), b.state_dict()
        for d, want in ((0.3, 0.3), (None, 0.5), (0.0, 0.0)):
            got = load_model("tiny-gen", weights_dir=tmp_path, denoise=d).net.state_dict()
            for k in sa:
                assert torch.allclose(got[k], want * sa[k] + (1 - want) * sb[k], atol=1e-7), (d, k)
        alone = load_model("tiny-gen", weights_dir=tmp_path, denoise=1.0).net.state_dict()
        assert all(torch.equal(alone[k], sa[k]) for k in sa)
        with pytest.raises(UsageError, match=r"\[0, 1\]"):
            load_model("tiny-gen", weights_dir=tmp_path, denoise=1.5)
        with pytest.raises(UsageError, match="no denoise twin"):
            load_model("tiny-wdn", weights_dir=tmp_path, denoise=0.5)
    finally:
        _load_toml.cache_clear()


def test_general_x4v3_record_names_its_twin():
    rec = get_record("realesr-general-x4v3")
    twin = get_record(rec.denoise_with)
    assert rec.denoise_default == 0.5 and twin.kwargs == rec.kwargs
    assert sum(p.numel() for p in build_network(rec).parameters()) == rec.params == twin.params == 1_213_296
