"""Streaming vs whole-sequence: what the clips (and their cross-fades) cost each recurrent model.

    python benchmarks/streaming_vs_whole.py [--frames 41] [--crop 64] [--models basicvsr iconvsr ...]

For each recurrent model of the registry (random weights, seed 0: the architecture's propagation,
not a checkpoint's), the first FRAMES frames of Vid4 calendar (BI x4 LR, a CROPxCROP LR window)
are upscaled once as one sequence and once streamed with the record's own clip length and
overlap; the PSNR of each streamed frame against the whole-sequence frame is reported (min and
mean over frames; frames with no difference count as 100 dB in the mean).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=41)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--models", nargs="*")
    a = ap.parse_args()
    from tests.data import vid4_lr
    from upvid.engine import Engine, EngineConfig
    from upvid.models import list_models, load_model

    frames = [np.ascontiguousarray(f[:a.crop, :a.crop]) for f in vid4_lr("calendar", a.frames)]
    names = a.models or [n for n, r in list_models().items() if r.family == "recurrent" and r.scale == 4]
    seen, rows = set(), {}
    for name in names:
        rec = list_models()[name]
        key = (rec.arch, json.dumps(rec.kwargs, sort_keys=True), rec.frames, rec.overlap, rec.clip_grid)
        if key in seen:
            continue
        seen.add(key)
        torch.manual_seed(0)
        model = load_model(name, pretrained=False)
        with torch.no_grad():
            whole = list(Engine(model, EngineConfig.for_model(model, chunk=len(frames), overlap=0)).run(frames))
            stream = list(Engine(model, EngineConfig.for_model(model)).run(frames))
        psnr = []
        for x, y in zip(whole, stream):
            mse = np.mean((x.astype(np.float64) - y) ** 2)
            psnr.append(100.0 if mse == 0 else 10 * np.log10(255**2 / mse))
        rows[name] = {"clip": rec.frames, "overlap": rec.overlap, "min_db": round(min(psnr), 1),
                      "mean_db": round(float(np.mean(psnr)), 1), "identical_frames": int(sum(p == 100.0 for p in psnr))}
        print(name, rows[name], flush=True)
    print(json.dumps({"frames": a.frames, "crop": a.crop, "models": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
