"""End-to-end fps of `upvid` (decode + model + stitch + encode in threads) against model-only fps.

Model-only: the engine over frames already decoded into memory (no decode, no encode).
End to end: the same engine inside the threaded pipeline, decoding the clip and encoding x264.
Both after one warm-up pass; each the median of --repeats runs.

    python benchmarks/throughput.py --model realesr-animevideov3 --weights-dir ../shared/data/weights
    python benchmarks/throughput.py --model basicvsrpp --random-weights --video clip.mp4

Default input: the Vid4 calendar sequence degraded BI x4 (180x144, 41 frames) made with `upvid degrade`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    from upvid.engine import Engine, EngineConfig, resolve_device, resolve_dtype
    from upvid.engine.pipeline import run_pipeline
    from upvid.io import VideoWriter, probe, read_frames
    from upvid.models import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--video", type=Path, default=None)
    ap.add_argument("--frames", type=int, default=None, help="use only the first N frames")
    ap.add_argument("--weights-dir", type=Path, default=None)
    ap.add_argument("--random-weights", action="store_true")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--chunk", type=int, default=None)
    ap.add_argument("--tile", type=int, default=None)
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as d:
        video = args.video
        if video is None:
            video = Path(d) / "calendar_lr.mp4"
            subprocess.run([sys.executable, "-m", "upvid", "degrade", str(REPO.parent / "shared/data/vid4/GT/calendar"),
                            str(video)], check=True, capture_output=True)
        info = probe(video)
        frames = [f for f in read_frames(video, info)][: args.frames]
        n = len(frames)
        dev = resolve_device(args.device)
        dt = resolve_dtype(args.dtype, dev)
        model = load_model(args.model, pretrained=not args.random_weights, weights_dir=args.weights_dir, device=dev)

        def engine() -> Engine:
            return Engine(model, EngineConfig.for_model(model, chunk=args.chunk, tile=args.tile, device=dev, dtype=dt))

        def sync() -> None:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)

        def model_only() -> float:
            t0 = time.perf_counter()
            count = sum(1 for _ in engine().run(f.rgb for f in frames))
            sync()
            assert count == n
            return n / (time.perf_counter() - t0)

        def end_to_end() -> tuple[float, dict]:
            out = Path(d) / "out.mp4"
            writer = VideoWriter(out, info, width=info.width * model.scale, height=info.height * model.scale,
                                 preset=args.preset)
            limited = (f for i, f in enumerate(read_frames(video, info)) if args.frames is None or i < args.frames)
            stats = run_pipeline(limited, engine(), writer.write)
            writer.close()
            return stats.fps, {k: round(getattr(stats, k), 3) for k in ("decode_s", "model_s", "stitch_s", "encode_s", "total_s")}

        model_only()  # warm-up
        m = statistics.median(model_only() for _ in range(args.repeats))
        end_to_end()
        runs = [end_to_end() for _ in range(args.repeats)]
        e = statistics.median(r[0] for r in runs)
        stages = runs[[r[0] for r in runs].index(sorted(r[0] for r in runs)[len(runs) // 2])][1]
    result = {"model": args.model, "video": str(video) if args.video else "vid4 calendar BI x4", "frames": n,
              "lr_size": f"{info.width}x{info.height}", "device": str(dev), "dtype": str(dt).removeprefix("torch."),
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "model_only_fps": round(m, 3), "end_to_end_fps": round(e, 3), "ratio": round(e / m, 3),
              "end_to_end_stage_seconds": stages}
    print(f"{args.model}: model-only {m:.3f} fps, end-to-end {e:.3f} fps, ratio {e / m:.3f} "
          f"({n} frames {info.width}x{info.height} -> x{model.scale}, {dev}, {result['dtype']})", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
