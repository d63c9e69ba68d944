"""The OpenVINO backend (``--backend openvino``, issue 19): parity with torch at f32, bf16 quality
on Vid4 with real weights, recurrent and sliding-window VSR networks, seam-free tiles, the IR
cache, the fallback to torch, and the choice in the job's summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.cli import call
from tests.data import VID4, WEIGHTS, need

ov = pytest.importorskip("openvino", reason="OpenVINO is not installed (the upvid[openvino] extra)")

from upvid.engine import Engine, EngineConfig  # noqa: E402
from upvid.engine.openvino import OpenVinoModel, cpu_precisions  # noqa: E402
from upvid.models import load_model  # noqa: E402


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # a fresh IR cache per test


def _random(name: str):
    torch.manual_seed(0)
    return load_model(name, pretrained=False).eval()


@pytest.mark.parametrize("name,shape", [
    ("rlfn-x4", (1, 1, 3, 24, 32)),
    ("vespcn-x4-bd", (1, 3, 3, 24, 32)),  # sliding window of 3 with its flow network and warping
    ("basicvsr", (1, 2, 3, 32, 32)),       # recurrent: SpyNet, grid_sample, both propagation loops
    ("edvr-m", (1, 5, 3, 32, 32)),         # deformable convolution (torchvision) and temporal attention
])
def test_f32_matches_torch_within_1e4(name, shape):
    model = _random(name)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x)
    got = OpenVinoModel(model, "f32")(x)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() < 1e-4


def _psnr_y(a: np.ndarray, b: np.ndarray, border: int = 4) -> float:
    from upvid.bench.metrics import psnr_y

    return psnr_y(a, b, crop_border=border)


@pytest.mark.skipif("bf16" not in cpu_precisions(), reason="this CPU has no BF16")
@pytest.mark.parametrize("name", ["rlfn-x4", "realesr-animevideov3", "vespcn-x4-bd", "espcn-x4-y"])
def test_bf16_costs_under_005_db_on_vid4_with_real_weights(name):
    """PSNR-Y against the ground truth (a Vid4 calendar crop, the model's degradation): OpenVINO
    bf16 within 0.05 dB of torch fp32."""
    from upvid.bench.degrade import bd_degrade, bi_degrade
    from upvid.io.images import read_image_folder

    model = load_model(name, weights_dir=need(WEIGHTS)).eval()
    frames = model.record.frames
    hr = [f[96:96 + 192, 160:160 + 256] for _, f in zip(range(3), read_image_folder(need(VID4 / "calendar")))]
    hr_t = torch.stack([torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1) for f in hr])
    lr = (bd_degrade(hr_t, 4) if "bd" in name else bi_degrade(hr_t, 4)).float().div(255)  # (3, 3, 48, 64)
    x = lr[None] if frames == 3 else lr[1:2][None]
    ref = hr[1]
    with torch.no_grad():
        fp32 = model(x)
    bf16 = OpenVinoModel(model, "bf16")(x)

    def img(y):
        return (y[0, 0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

    loss = _psnr_y(img(fp32), ref) - _psnr_y(img(bf16), ref)
    assert abs(loss) < 0.05, loss


def test_tiled_engine_on_openvino_equals_torch_and_reuses_one_compiled_shape():
    """Tiles (fixed shape: one compiled network) stitched as on torch: no seams, same pixels."""
    model = _random("rlfn-x4")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(3)]
    cfg = EngineConfig.for_model(model, tile=24, tile_overlap=8)
    want = list(Engine(model, cfg).run(frames))
    eng = Engine(model, EngineConfig.for_model(model, tile=24, tile_overlap=8).__class__(
        **{**cfg.__dict__, "backend": "openvino", "precision": "f32"}))
    got = list(eng.run(frames))
    assert max(np.abs(a.astype(int) - b).max() for a, b in zip(got, want)) <= 1
    assert len(eng._forward_fn._compiled) == 1


def test_the_ir_is_cached_and_read_back(monkeypatch):
    model = _random("rlfn-x4")
    x = torch.rand(1, 1, 3, 16, 16)
    first = OpenVinoModel(model, "f32")(x)
    from upvid.engine.openvino import cache_dir

    assert list(cache_dir().glob("rlfn-x4-*.xml"))

    def no_convert(*a, **k):
        raise AssertionError("converted again")

    monkeypatch.setattr(ov, "convert_model", no_convert)
    again = OpenVinoModel(model, "f32")(x)
    assert torch.equal(first, again)


def test_a_network_that_does_not_convert_falls_back_to_torch(monkeypatch, caplog):
    model = _random("rlfn-x4")

    def fails(*a, **k):
        raise RuntimeError("no translation for aten::something")

    monkeypatch.setattr(ov, "convert_model", fails)
    runner = OpenVinoModel(model, "f32")
    x = torch.rand(1, 1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(runner(x), model(x))
    assert runner.fallback and "OpenVINO cannot run it" in caplog.text


def test_cli_reports_the_backend_and_why(tmp_path, monkeypatch):
    """On a 64x48 clip: a full-size one costs a conversion per tile shape (90 s here, for nothing more)."""
    from tests.media import make_clip

    monkeypatch.setenv("UPVID_BACKEND", "auto")
    clip = make_clip(tmp_path / "in.mp4", n=4, size=(64, 48))
    out = tmp_path / "o.mkv"
    rc, stdout, err = call(str(clip), str(out), "-m", "rlfn-x4", "--random-weights", "--frames", "0:3", "--json")
    assert rc == 0, err
    r = json.loads(stdout)["results"][0]
    assert "openvino" in r["backend"] and ("bf16" in r["backend"] or "f32" in r["backend"])
    # a recurrent model stays on torch unless asked for, saying why
    rc, stdout, err = call(str(clip), str(tmp_path / "i.mkv"), "-m", "basicvsr", "--random-weights",
                           "--frames", "0:2", "--tile", "0", "--json", "--scene-cuts", "off")
    assert rc == 0, err
    r = json.loads(stdout)["results"][0]
    assert r["backend"].endswith("torch [recurrent: OpenVINO unrolls its clip (slow to convert once); ask with "
                                 "--backend openvino]")
    # one whose graph follows the clip's position stays on torch even when asked for
    rc, stdout, err = call(str(clip), str(tmp_path / "i2.mkv"), "-m", "iconvsr", "--random-weights",
                           "--frames", "0:2", "--tile", "0", "--json", "--scene-cuts", "off", "--backend", "openvino")
    assert rc == 0, err
    r = json.loads(stdout)["results"][0]
    assert r["backend"].endswith("torch [iconvsr changes its graph with the clip's position in the video]")


def test_backend_openvino_where_it_cannot_run_is_exit_2(realshort, tmp_path, monkeypatch):
    import upvid.engine.openvino as backend

    monkeypatch.setattr(backend, "unavailable", lambda: "OpenVINO is not installed (pip install 'upvid[openvino]')")
    rc, _, err = call(str(realshort), str(tmp_path / "o.mkv"), "-m", "bicubic", "--backend", "openvino",
                      "--frames", "0:2")
    assert rc == 2 and "upvid[openvino]" in err and len(err.strip().splitlines()) == 1, err
    rc, _, err = call(str(realshort), str(tmp_path / "o.mkv"), "-m", "bicubic", "--backend", "tensorrt",
                      "--frames", "0:2")
    assert rc == 2 and "--backend must be" in err
