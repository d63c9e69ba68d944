"""Seam and clip-border cost: tiled vs untiled and clipped vs whole-sequence outputs on Vid4.

For each sequence the model runs three ways on the same LR frames (BI or BD from the GT):
  whole   -- no tiles, the whole sequence as one clip (the reference)
  tiled   -- --tile/--tile-overlap (default: 64 / 16 LR px)
  clipped -- recurrent models: clips of --chunk frames sharing --overlap (default: the model's)
and reports PSNR-Y against GT for each, the loss in dB against `whole`, and PSNR-Y of each
variant against `whole` itself (how close the outputs are).

    python benchmarks/seams.py --model realesr-animevideov3 --weights-dir ../shared/data/weights
    python benchmarks/seams.py --model basicvsrpp --random-weights --max-frames 12 --sequences calendar
    python benchmarks/seams.py --model iart --random-weights --sequences calendar --crop 128x128 --no-tiled
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    from upvid.bench.degrade import bd_degrade, bi_degrade, mod_crop
    from upvid.engine import Engine, EngineConfig
    from upvid.io.images import read_image_folder
    from upvid.bench.metrics import psnr_y
    from upvid.models import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--dataset", type=Path, default=REPO.parent / "shared/data/vid4/GT")
    ap.add_argument("--sequences", nargs="*", default=None)
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--degradation", choices=["bi", "bd"], default="bi")
    ap.add_argument("--tile", type=int, default=64)
    ap.add_argument("--tile-overlap", type=int, default=16)
    ap.add_argument("--chunk", type=int, default=None)
    ap.add_argument("--overlap", type=int, default=None)
    ap.add_argument("--weights-dir", type=Path, default=None)
    ap.add_argument("--random-weights", action="store_true")
    ap.add_argument("--crop", default=None, help="HxW: score a centred crop of this HR size only (big models on CPU)")
    ap.add_argument("--no-tiled", action="store_true", help="skip the tiled variant (clip borders only)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    model = load_model(args.model, pretrained=not args.random_weights, weights_dir=args.weights_dir)
    s = model.scale
    seqs = args.sequences or sorted(p.name for p in args.dataset.iterdir() if p.is_dir())
    recurrent = model.family == "recurrent"
    variants = {"whole": dict(tile=0, chunk=10**6 if recurrent else None, overlap=0 if recurrent else None),
                "tiled": dict(tile=args.tile, tile_overlap=args.tile_overlap, chunk=10**6 if recurrent else None,
                              overlap=0 if recurrent else None)}
    if args.no_tiled:
        del variants["tiled"]
    if recurrent:
        variants["clipped"] = dict(tile=0, chunk=args.chunk, overlap=args.overlap)
    table: dict[str, dict] = {}
    for seq in seqs:
        gt = [mod_crop(torch.from_numpy(f).permute(2, 0, 1)[None], s)[0] for f in read_image_folder(args.dataset / seq)]
        gt = gt[: args.max_frames]
        if args.crop:
            ch, cw = (int(v) // s * s for v in args.crop.lower().split("x"))
            top, left = (gt[0].shape[-2] - ch) // 2 // s * s, (gt[0].shape[-1] - cw) // 2 // s * s
            gt = [g[:, top:top + ch, left:left + cw] for g in gt]
        hr = torch.stack(gt)
        lr_t = bi_degrade(hr, s) if args.degradation == "bi" else bd_degrade(hr, s)
        lr = [f.permute(1, 2, 0).contiguous().numpy() for f in lr_t]
        gt_np = [f.permute(1, 2, 0).numpy() for f in gt]
        outs, secs = {}, {}
        for name, kw in variants.items():
            cfg = EngineConfig.for_model(model, **kw)
            t0 = time.perf_counter()
            outs[name] = list(Engine(model, cfg).run(lr))
            secs[name] = time.perf_counter() - t0
        row = {f"{name}_s": t for name, t in secs.items()}
        for name, frames in outs.items():
            row[f"{name}_psnr_y"] = float(np.mean([psnr_y(o, g, crop_border=0) for o, g in zip(frames, gt_np)]))
            if name != "whole":
                per_frame = [psnr_y(o, w) for o, w in zip(frames, outs["whole"])]
                mse = np.mean([10 ** (-p / 10) for p in per_frame])  # identical frames (inf dB) count as 0 error
                row[f"{name}_vs_whole_psnr_y"] = float("inf") if mse == 0 else float(-10 * np.log10(mse))
                row[f"{name}_vs_whole_worst_frame_psnr_y"] = float(min(per_frame))
                row[f"{name}_loss_db"] = row["whole_psnr_y"] - row[f"{name}_psnr_y"]
        table[seq] = row
        print(seq, {k: round(v, 4) for k, v in row.items()}, file=sys.stderr)
    avg = {k: float(np.mean([r[k] for r in table.values()])) for k in next(iter(table.values()))}
    print("average", {k: round(v, 4) for k, v in avg.items()}, file=sys.stderr)
    if args.json:
        print(json.dumps({"model": args.model, "degradation": args.degradation, "tile": args.tile,
                          "tile_overlap": args.tile_overlap, "sequences": table, "average": avg}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
