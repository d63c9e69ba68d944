"""upvid.bench quality path on a tiny synthetic dataset."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from upvid import bench
from upvid.degrade import bi_degrade
from upvid.errors import InputError, UsageError
from upvid.io.images import write_image


def _smooth_frames(t: int, h: int, w: int, seed: int) -> np.ndarray:
    """Band-limited random frames (so bicubic scores are well above noise level)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / 8.0
    out = []
    for k in range(t):
        ph = rng.uniform(0, 6, size=3)
        f = np.stack([np.sin(xx + ph[c] + 0.3 * k) * np.cos(yy * 0.7 + ph[c]) for c in range(3)], -1)
        out.append(np.clip((f * 0.4 + 0.5) * 255 + 0.5, 0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toyset")
    for i, name in enumerate(["aa", "bb"]):
        frames = _smooth_frames(3, 48, 40 + 8 * i, seed=i)
        for k, f in enumerate(frames):
            p = root / "GT" / name / f"{k:08d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            write_image(f, p)
            lr = bi_degrade(torch.from_numpy(f).permute(2, 0, 1)[None], 4)[0].permute(1, 2, 0).numpy()
            q = root / "BIx4" / name / f"{k:08d}.png"
            q.parent.mkdir(parents=True, exist_ok=True)
            write_image(np.ascontiguousarray(lr), q)
    return root


def test_matlab_bicubic_and_schema(dataset: Path) -> None:
    seen = []
    r = bench.run_quality(bench.MATLAB_BICUBIC, dataset, "BI", on_sequence=seen.append)
    assert [s.name for s in r.sequences] == ["aa", "bb"] == [s.name for s in seen]
    assert r.dataset.startswith("toyset") and r.frames == 6 and r.scale == 4
    assert r.sequences[1].lr_size == (12, 12) and r.sequences[1].hr_size == (48, 48)
    avg = r.average
    assert 20 < avg["psnr_y"] < 60 and 0 < avg["ssim_y"] <= 1
    assert avg["psnr_y"] == pytest.approx(np.mean([s.psnr_y for s in r.sequences]))
    d = json.loads(r.to_json())
    assert d["schema"] == "upvid.bench.quality/1"
    for key in ("model", "pretrained", "dataset", "dataset_dir", "lr_source", "degradation", "scale", "crop_border",
                "device", "dtype", "engine", "sequences", "average", "frames", "timing", "published", "versions",
                "created"):
        assert key in d, key
    assert set(d["sequences"][0]) == {"name", "frames", "lr_size", "hr_size", "psnr_y", "ssim_y", "psnr_rgb",
                                      "model_s", "frame_psnr_y"}
    assert set(d["timing"]) == {"total_s", "model_s", "degrade_s", "metrics_s", "read_s", "fps"}
    assert d["published"] is None  # not a known dataset


def test_engine_model_and_lr_dir(dataset: Path) -> None:
    r = bench.run_quality("bicubic", dataset, "BI", pretrained=False)
    assert r.engine["chunk"] >= 1 and r.dtype == "fp32" and r.device == "cpu"
    r2 = bench.run_quality("bicubic", dataset, "BI", pretrained=False, lr_dir=dataset / "BIx4")
    assert r2.lr_source.endswith("BIx4")
    assert r2.average == pytest.approx(r.average, abs=1e-12)  # same LR frames either way
    rbd = bench.run_quality("bicubic", dataset, "BD", pretrained=False, sequences=["bb"], max_frames=2)
    assert rbd.frames == 2 and rbd.degradation == "BD"


def test_identity_scale_gives_inf_in_json(dataset: Path) -> None:
    r = bench.run_quality(bench.MATLAB_BICUBIC, dataset, "BI", scale=1, sequences=["aa"])
    assert r.average["psnr_y"] == float("inf") and r.average["ssim_y"] == pytest.approx(1.0)
    assert json.loads(r.to_json())["average"]["psnr_y"] == "inf"


def test_render_and_main(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = bench.main_quality(bench.MATLAB_BICUBIC, dataset, degradation="BI", json_out=out, quiet=True)
    assert json.loads(out.read_text())["average"]["psnr_y"] == pytest.approx(r.average["psnr_y"])
    buf = io.StringIO()
    bench.render_quality(r, Console(file=buf, width=120))
    text = buf.getvalue()
    assert "average" in text and "aa" in text and "PSNR-Y" in text


def test_errors(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError):
        bench.run_quality(bench.MATLAB_BICUBIC, tmp_path / "missing")
    with pytest.raises(UsageError):
        bench.run_quality(bench.MATLAB_BICUBIC, dataset, "XX")
    with pytest.raises(UsageError):
        bench.run_quality(bench.MATLAB_BICUBIC, dataset, sequences=["nope"])
