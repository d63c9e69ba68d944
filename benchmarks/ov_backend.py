"""Model-stage speed and accuracy of the OpenVINO backend against torch, per registry network.

For each distinct network (the first record of each architecture; real weights where the shared
folder has them, random otherwise), on one LR input of --size (Vid4 calendar content; a clip of
--clip frames for recurrent models, the record's window for sliding-window ones):

- torch fp32 (the engine's CPU path: channels_last where the record asks, inference mode),
- OpenVINO f32 and OpenVINO bf16 (when the CPU has BF16), compiled as the engine compiles them,

each timed as the median of --repeats calls after a warm-up; the f32 max abs error and the bf16
PSNR against torch fp32; the conversion time (once per shape, then cached on disk). A network
that does not convert is listed with the reason.

    python benchmarks/ov_backend.py --weights-dir ../shared/data/weights            # Markdown table
    python benchmarks/ov_backend.py --models rlfn-x4 basicvsr --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _distinct() -> list[str]:
    from tests.test_zoo_e2e import _names

    return _names()


def _input(rec, size: tuple[int, int], clip: int) -> torch.Tensor:
    from tests.data import VID4

    from upvid.bench.degrade import bi_degrade
    from upvid.io.images import read_image_folder

    t = clip if rec.family == "recurrent" else rec.frames
    h, w = size
    hr = [f[: 4 * h, : 4 * w] for _, f in zip(range(t), read_image_folder(VID4 / "calendar"))]
    x = torch.stack([torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1) for f in hr])
    lr = bi_degrade(x, 4).float().div(255)
    if rec.scale != 4:
        lr = torch.nn.functional.interpolate(lr, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    return lr[None]


def _time(fn, x, repeats: int) -> float:
    fn(x)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def measure(name: str, weights_dir: Path | None, size, clip: int, repeats: int) -> dict:
    from upvid.engine.openvino import OpenVinoModel, cpu_precisions, unsupported
    from upvid.models import get_record, load_model

    rec = get_record(name)
    real = False
    try:
        if weights_dir is None:
            raise FileNotFoundError
        model = load_model(name, weights_dir=weights_dir).eval()
        real = True
    except Exception:  # noqa: BLE001 - no local checkpoint: random weights
        torch.manual_seed(0)
        model = load_model(name, pretrained=False).eval()
    row = {"model": name, "family": rec.family, "weights": "real" if real else "random"}
    why = unsupported(model)
    if why:
        return {**row, "openvino": f"no ({why})"}
    x = _input(rec, size, clip)
    row["input"] = list(x.shape)
    if rec.channels_last:
        model.net.to(memory_format=torch.channels_last)

    def torch_fn(v):
        with torch.inference_mode():
            return model(v)

    row["torch_s"] = _time(torch_fn, x, repeats)
    ref = torch_fn(x)
    for prec in ["f32", *(["bf16"] if "bf16" in cpu_precisions() else [])]:
        runner = OpenVinoModel(model, prec)
        t0 = time.perf_counter()
        try:
            y = runner(x)
        except Exception as e:  # noqa: BLE001
            return {**row, "openvino": f"no ({type(e).__name__}: {e})"}
        if runner.fallback:
            return {**row, "openvino": f"no ({runner.fallback})"}
        row[f"first_call_{prec}_s"] = time.perf_counter() - t0
        row[f"{prec}_s"] = _time(runner, x, repeats)
        err = (y - ref).abs().max().item()
        mse = torch.mean((y.clamp(0, 1) - ref.clamp(0, 1)) ** 2).item()
        row[f"{prec}_max_err"] = err
        row[f"{prec}_psnr_vs_fp32"] = math.inf if mse == 0 else 10 * math.log10(1 / mse)
        row[f"{prec}_speedup"] = row["torch_s"] / row[f"{prec}_s"]
    row["openvino"] = "yes"
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=None, help="default: every distinct network")
    ap.add_argument("--weights-dir", type=Path, default=None)
    ap.add_argument("--size", default="64x64", help="LR HEIGHTxWIDTH")
    ap.add_argument("--clip", type=int, default=6, help="frames per recurrent clip")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    h, w = (int(v) for v in a.size.lower().split("x"))
    torch.set_num_threads(torch.get_num_threads())
    rows = []
    with tempfile.TemporaryDirectory() as d:
        import os

        os.environ.setdefault("HF_HOME", d)  # a cold IR cache: first_call_* includes the conversion
        for name in a.models or _distinct():
            if name == "bicubic":
                continue
            try:
                row = measure(name, a.weights_dir, (h, w), a.clip, a.repeats)
            except Exception as e:  # noqa: BLE001
                row = {"model": name, "openvino": f"error ({type(e).__name__}: {e})"}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print("| model | weights | input (B, T, C, H, W) | OpenVINO | torch fp32 s | OV f32 s (x) | f32 max err | "
          "OV bf16 s (x) | bf16 PSNR vs fp32 | first call f32 s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r.get("openvino") != "yes":
            print(f"| {r['model']} | {r.get('weights', '')} | {tuple(r.get('input', ()))} | {r['openvino']} |"
                  " | | | | | |")
            continue
        bf = (f"{r['bf16_s']:.3f} ({r['bf16_speedup']:.2f}x) | {r['bf16_psnr_vs_fp32']:.1f} dB"
              if "bf16_s" in r else "- | -")
        print(f"| {r['model']} | {r['weights']} | {tuple(r['input'])} | yes | {r['torch_s']:.3f} | "
              f"{r['f32_s']:.3f} ({r['f32_speedup']:.2f}x) | {r['f32_max_err']:.1e} | {bf} | "
              f"{r['first_call_f32_s']:.1f} |")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
