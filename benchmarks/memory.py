"""Peak host memory (RSS) of `upvid` against video length: it must not grow with the frame count.

Makes two real H.264 + AAC clips with PyAV (moving content, N1 and N2 frames, same size), runs
`upvid` on each in a fresh process, and reports the child's peak RSS (``ru_maxrss`` from wait4).

    python benchmarks/memory.py --model bicubic --frames 300 3000 --size 96x128
    python benchmarks/memory.py --model realesr-animevideov3 --weights-dir ../shared/data/weights

Prints a table and, with --json, a JSON object on stdout. Exit 1 if the longest run's peak RSS
exceeds the shortest's by more than --tolerance (default 10%).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_clip(path: Path, frames: int, height: int, width: int, fps: int = 25) -> None:
    """A moving-gradient clip with a tone, encoded with upvid's own helper (PyAV)."""
    from upvid.io.images import encode_clip

    yy, xx = np.mgrid[0:height, 0:width]

    def gen():
        for t in range(frames):
            r = (xx * 2 + t * 3) % 256
            g = (yy * 3 + t * 5) % 256
            b = ((xx + yy) + t * 7) % 256
            yield np.stack([r, g, b], -1).astype(np.uint8)

    encode_clip(gen(), path, fps=fps, crf=23)


def run(cmd: list[str]) -> tuple[int, float, float]:
    """Run ``cmd``; return (exit code, peak RSS in MiB, wall seconds)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode() if p.stderr else ""
    if p.returncode:
        sys.stderr.write(err)
    return p.returncode, usage.ru_maxrss / 1024, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="bicubic")
    ap.add_argument("--scale", type=int, default=None)
    ap.add_argument("--frames", type=int, nargs="+", default=[300, 3000])
    ap.add_argument("--size", default="96x128", help="HxW of the LR clip")
    ap.add_argument("--weights-dir", default=None)
    ap.add_argument("--extra", default="", help="extra upvid options, e.g. '--tile 64 --chunk 10'")
    ap.add_argument("--tolerance", type=float, default=0.10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    h, w = map(int, args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for n in args.frames:
            clip = Path(d) / f"in_{n}.mp4"
            make_clip(clip, n, h, w)
            out = Path(d) / f"out_{n}.mp4"
            cmd = [sys.executable, "-m", "upvid", str(clip), str(out), "--model", args.model, "-q", "--overwrite",
                   "--preset", "ultrafast", *args.extra.split()]
            if args.scale:
                cmd += ["--scale", str(args.scale)]
            if args.weights_dir:
                cmd += ["--weights-dir", args.weights_dir]
            rc, rss, wall = run(cmd)
            if rc:
                print(f"upvid failed with exit {rc} on {n} frames", file=sys.stderr)
                return 2
            rows.append({"frames": n, "peak_rss_mib": round(rss, 1), "wall_s": round(wall, 2),
                         "fps": round(n / wall, 2)})
    base = rows[0]["peak_rss_mib"]
    worst = max(r["peak_rss_mib"] for r in rows)
    growth = worst / base - 1
    result = {"model": args.model, "size": args.size, "runs": rows, "rss_growth": round(growth, 4),
              "tolerance": args.tolerance, "ok": growth <= args.tolerance}
    for r in rows:
        print(f"{args.model:>24} {r['frames']:>6} frames  peak RSS {r['peak_rss_mib']:8.1f} MiB  "
              f"{r['wall_s']:7.1f} s  {r['fps']:7.1f} fps", file=sys.stderr)
    print(f"peak RSS growth {growth * 100:+.1f}% (limit {args.tolerance * 100:.0f}%)", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
