"""upvid.bench and `upvid bench`: quality on a tiny synthetic dataset and a real clip, speed, compare."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from upvid import bench
from upvid.bench.degrade import bi_degrade
from upvid.errors import InputError, UsageError
from upvid.io.images import write_image

QUALITY_KEYS = {"schema", "model", "pretrained", "source", "dataset", "dataset_dir", "lr_source", "degradation",
                "sigma", "scale", "crop_border", "device", "dtype", "engine", "sequences", "average", "frames",
                "timing", "published", "versions", "created"}
SPEED_KEYS = {"schema", "model", "pretrained", "scale", "device", "device_name", "dtype", "backend", "engine", "input",
              "encoder", "warmup", "repeats", "seconds", "fps", "memory", "runs", "load_s", "warmup_s", "isolated",
              "host", "versions", "created"}
STAGES = {"decode", "model", "stitch", "encode", "end_to_end"}


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
    assert set(d) == QUALITY_KEYS
    assert d["source"] == "dataset" and d["sigma"] is None
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


def test_bd_sigma(dataset: Path) -> None:
    kw = dict(pretrained=False, sequences=["aa"], max_frames=1)
    r16 = bench.run_quality("bicubic", dataset, "BD", **kw)
    r15 = bench.run_quality("bicubic", dataset, "BD", sigma=1.5, **kw)
    assert r16.sigma == 1.6 and r15.sigma == 1.5
    assert r15.average["psnr_y"] != r16.average["psnr_y"]
    assert json.loads(r15.to_json())["sigma"] == 1.5
    assert bench.run_quality("bicubic", dataset, "BI", **kw).sigma is None


def test_lr_dir_count_mismatch(dataset: Path, tmp_path: Path) -> None:
    lr = tmp_path / "lr" / "aa"
    lr.mkdir(parents=True)
    src = sorted((dataset / "BIx4" / "aa").iterdir())
    (lr / src[0].name).write_bytes(src[0].read_bytes())
    with pytest.raises(InputError, match="fewer LR frames"):
        bench.run_quality("bicubic", dataset, "BI", pretrained=False, sequences=["aa"], lr_dir=tmp_path / "lr")


# -- the `upvid bench` command -------------------------------------------------------------------
@pytest.fixture
def cli():
    """Run ``upvid ARGS`` in-process; returns (exit code, stdout, stderr)."""
    from tests.cli import call

    return call


def test_cli_quality_dataset(dataset: Path, cli) -> None:
    code, out, err = cli("bench", "-m", "bicubic", "--dataset", str(dataset), "--json")
    assert code == 0, err
    d = json.loads(out)
    assert set(d) == QUALITY_KEYS and d["schema"] == "upvid.bench.quality/1"
    assert d["model"] == "bicubic" and d["frames"] == 6 and [s["name"] for s in d["sequences"]] == ["aa", "bb"]
    assert 20 < d["average"]["psnr_y"] < 60 and d["degradation"] == "BI" and d["dtype"] == "fp32"
    assert "average" in err and "PSNR-Y" in err  # the table goes to stderr


def test_cli_quality_real_clip(realshort: Path, cli) -> None:
    code, out, err = cli("bench", "-m", "bicubic", "--video", str(realshort), "--max-frames", "6", "--json", "-q")
    assert code == 0, err
    assert err == ""
    d = json.loads(out)
    assert d["source"] == "video" and d["dataset"] == "realshort.mp4" and d["frames"] == 6
    s = d["sequences"][0]
    assert s["lr_size"] == [60, 80] and s["hr_size"] == [240, 320] and len(s["frame_psnr_y"]) == 6
    assert 20 < d["average"]["psnr_y"] < 45 and 0.5 < d["average"]["ssim_y"] < 1


def test_cli_compare_quality(dataset: Path, cli) -> None:
    code, out, err = cli("bench", "--compare", "bicubic", "matlab-bicubic", "--dataset", str(dataset),
                         "--max-frames", "2", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["schema"] == "upvid.bench.compare/1" and d["kind"] == "quality"
    assert d["models"] == ["bicubic", "matlab-bicubic"]
    assert [r["model"] for r in d["results"]] == d["models"] and all(set(r) == QUALITY_KEYS for r in d["results"])
    assert d["results"][0]["average"] != d["results"][1]["average"]  # two different upscalers
    assert "bicubic" in err and "matlab-bicubic" in err


def _check_speed(d: dict, frames: int, lr: list[int]) -> None:
    assert set(d) == SPEED_KEYS and d["schema"] == "upvid.bench.speed/1"
    assert set(d["fps"]) == set(d["seconds"]) == STAGES
    assert all(v > 0 for v in d["fps"].values()) and all(v > 0 for v in d["seconds"].values())
    assert d["fps"]["end_to_end"] <= min(d["fps"][k] for k in ("decode", "model", "encode")) * 1.5
    assert d["input"]["frames"] == frames and d["input"]["lr_size"] == lr
    assert d["input"]["hr_size"] == [4 * lr[0], 4 * lr[1]]
    assert d["memory"]["peak_rss_mib"] > 50 and d["memory"]["cuda_peak_allocated_mib"] is None
    assert len(d["runs"]) == d["repeats"] and all(r["frames"] == frames and r["total_s"] > 0 for r in d["runs"])
    assert d["device"] == "cpu" and d["dtype"] == "fp32" and d["device_name"]
    assert d["backend"]["name"] == "torch" and d["backend"]["reason"]  # UPVID_BACKEND=torch in the tests
    assert d["versions"]["torch"] and d["versions"]["av"] and d["warmup"] == 1


def test_cli_speed_synthetic(cli) -> None:
    code, out, err = cli("bench", "-m", "bicubic", "--speed", "--size", "32x48", "--frames", "4", "--repeats", "2",
                         "--device", "cpu", "--preset", "ultrafast", "--json")
    assert code == 0, err
    d = json.loads(out)
    _check_speed(d, 4, [32, 48])
    assert d["input"]["source"] == "synthetic" and d["input"]["codec"] == "h264" and not d["isolated"]
    assert "end to end fps" in err


def test_cli_speed_real_clip(realshort: Path, cli) -> None:
    code, out, err = cli("bench", "--speed", "-m", "bicubic", "--video", str(realshort), "--frames", "3",
                         "--repeats", "1", "--device", "cpu", "--preset", "ultrafast", "--json", "-q")
    assert code == 0, err
    d = json.loads(out)
    _check_speed(d, 3, [240, 320])
    assert d["input"]["source"] == str(realshort) and d["encoder"]["preset"] == "ultrafast"


def test_cli_speed_compare(cli) -> None:
    code, out, err = cli("bench", "--speed", "--compare", "bicubic", "rlfn-x4", "--random-weights", "--size", "24x32",
                         "--frames", "3", "--repeats", "1", "--device", "cpu", "--chunk", "2",
                         "--preset", "ultrafast", "--no-isolate", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["schema"] == "upvid.bench.compare/1" and d["kind"] == "speed" and d["models"] == ["bicubic", "rlfn-x4"]
    for r in d["results"]:
        _check_speed(r, 3, [24, 32])
    assert d["results"][1]["engine"]["chunk"] == 2 and not d["results"][1]["pretrained"]
    assert "rlfn-x4" in err and "end to end fps" in err


def test_speed_isolated_child() -> None:
    r = bench.run_speed("bicubic", size=(24, 32), frames=2, repeats=1, device="cpu", preset="ultrafast", isolate=True)
    assert r.isolated and r.input["frames"] == 2 and r.fps["end_to_end"] > 0 and r.memory["peak_rss_mib"] > 50
    _check_speed(json.loads(r.to_json()), 2, [24, 32])


def test_cli_usage_errors(dataset: Path, cli) -> None:
    for args in (["bench", "--dataset", str(dataset)],                                    # no model
                 ["bench", "--compare", "bicubic", "--dataset", str(dataset)],             # one model
                 ["bench", "-m", "bicubic", "--dataset", str(dataset), "--sigma", "1.5"],  # sigma without bd
                 ["bench", "-m", "bicubic"],                                               # no data, no --speed
                 ["bench", "-m", "bicubic", "--speed", "--size", "big"],
                 ["bench", "-m", "matlab-bicubic", "--speed"],
                 ["bench", "-m", "bicubic", "--dataset", str(dataset), "--degradation", "xx"]):
        code, out, err = cli(*args)
        assert code == 2, (args, err)
        assert out == "" and err.count("\n") == 1 and err.startswith("upvid: "), err


def test_cli_bad_dataset_exit_3(tmp_path: Path) -> None:
    """End to end in a real process: one stderr line, exit code 3, nothing on stdout."""
    from tests.cli import run

    r = run("bench", "-m", "bicubic", "--dataset", tmp_path / "nope", "--json", timeout=120)
    assert r.returncode == 3, r.stderr
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("upvid: error: ") and "nope" in r.stderr
