"""One-command GPU check: correctness of upvid's CUDA paths and throughput at 540p -> 2160p.

    python benchmarks/gpu_check.py                 # on a CUDA machine: under 8 minutes on an H200
    python benchmarks/gpu_check.py --dry-run       # anywhere: the same code paths on tiny CPU inputs (CI)
    python benchmarks/gpu_check.py --json out.json

Checks (each prints one line, PASS/FAIL, and goes into the JSON):

1. precision: per model (random weights), bf16 and fp16 autocast output against fp32, PSNR
   (pass: >= 35 dB; the SpyNet flows and sampling grids stay fp32);
2. planner: the tile and window batch it picks for a 540p stream and the bytes per pixel it measured;
3. OOM back-off: a memory cap (``torch.cuda.set_per_process_memory_fraction``; in the dry run, a
   network that raises CUDA's OOM above a size) forces the back-off; every frame must come out
   and equal the untiled run within 1 level;
4. colour path: a real H.264 clip through the whole job with 4:2:0 planes converted on the device,
   against libswscale's RGB path (PSNR >= 38 dB) and the input's mean level (within 0.25);
5. ``--compile``: torch.compile'd engine output against eager (max difference <= 2 levels);
6. throughput: model-only fps (frames already in memory) and end-to-end fps (decode, model,
   encode in the pipeline) at 540p -> 2160p for basicvsrpp, rvrt and iart, random weights, bf16.

Exit code: 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PRECISION_MODELS = ["basicvsrpp", "rvrt", "iart", "basicvsr", "edvr-m", "realesr-animevideov3", "rlfn-x4"]
THROUGHPUT_MODELS = ["basicvsrpp", "rvrt", "iart"]
DRY_THROUGHPUT_MODELS = ["basicvsrpp"]  # the same code path; RVRT and IART take minutes on a CPU


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.float().clamp(0, 1) - b.float().clamp(0, 1)) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def _model(name: str, device: torch.device):
    from upvid.models import load_model

    torch.manual_seed(0)
    return load_model(name, pretrained=False, device=device).eval()


def _frames(n: int, h: int, w: int) -> list[np.ndarray]:
    """Real content: Vid4 calendar frames resized to ``h x w`` (noise when the data is absent)."""
    from tests.data import VID4

    out = []
    try:
        from upvid.io.images import read_image_folder

        for _, f in zip(range(n), read_image_folder(VID4 / "calendar")):
            t = torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)[None].float()
            t = torch.nn.functional.interpolate(t, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
            out.append(t.round().clamp(0, 255).byte()[0].permute(1, 2, 0).numpy())
    except Exception:  # noqa: BLE001
        pass
    rng = np.random.default_rng(0)
    while len(out) < n:
        out.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return out


class Report:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, check: str, ok: bool | None, **data) -> None:
        self.rows.append({"check": check, "ok": ok, **data})
        tag = "PASS" if ok else ("INFO" if ok is None else "FAIL")
        print(f"[{tag}] {check}: " + ", ".join(f"{k}={_short(v)}" for k, v in data.items()), flush=True)

    def guard(self, check: str, fn) -> None:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - one failed check does not stop the others
            self.add(check, False, error=f"{type(e).__name__}: {e}", where=traceback.format_exc(limit=-2).strip()[-300:])


def _short(v):
    return f"{v:.3f}" if isinstance(v, float) else v


def check_precision(rep: Report, device, size, clip) -> None:
    from upvid.engine.device import autocast

    h, w = size
    for name in PRECISION_MODELS:
        def one(name=name):
            m = _model(name, device)
            rec = m.record
            t = clip if rec.family == "recurrent" else rec.frames
            x = torch.stack([torch.from_numpy(f).permute(2, 0, 1) for f in _frames(t, h, w)]).float().div(255)
            x = x[None].to(device)
            with torch.inference_mode():
                ref = m(x)
            row = {}
            for dt in (torch.bfloat16, torch.float16):
                if (dt == torch.float16 and not rec.half) or (dt == torch.bfloat16 and not rec.bfloat16):
                    continue
                if device.type == "cpu" and dt == torch.float16:
                    continue  # CPU autocast is bf16
                with autocast(device, dt):
                    y = m(x)
                row[str(dt).removeprefix("torch.")] = _psnr(y, ref)
            ok = all(v >= 35 for v in row.values())
            rep.add(f"precision {name}", ok, input=list(x.shape), **{f"psnr_{k}_vs_fp32": v for k, v in row.items()})

        rep.guard(f"precision {name}", one)


def check_planner(rep: Report, device, size) -> None:
    from upvid.engine.planner import plan

    m = _model("basicvsrpp", device)
    p = plan(m, device, torch.bfloat16 if device.type == "cuda" else torch.float32, 6, size[0], size[1], 0, 6)
    ok = p.tile >= 0 and (device.type != "cuda" or p.bytes_per_px > 0)
    rep.add("planner basicvsrpp", ok, stream=f"{size[1]}x{size[0]}", tile=p.tile, chunk=p.chunk,
            bytes_per_px=p.bytes_per_px)


class _OomAbove(torch.nn.Module):
    """Per-frame x2 bicubic that raises CUDA's out-of-memory error above ``limit`` px (the dry run)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def forward(self, x):
        if x.shape[-1] * x.shape[-2] > self.limit ** 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)


def check_oom_backoff(rep: Report, device, size, dry: bool) -> None:
    from upvid.engine import Engine, EngineConfig
    from upvid.models import get_record
    from upvid.models.upscaler import Upscaler

    frames = _frames(4, *size)
    if dry:
        rec = dataclasses.replace(get_record("bicubic"), name="oom-probe", scales=None, scale=2)
        model = Upscaler(_OomAbove(40), rec, 2)  # whole 48x64 frames "do not fit", 32 px tiles do
    else:
        model = _model("realesr-animevideov3", device)
    cfg = EngineConfig.for_model(model, tile=0, device=device, dtype=torch.float32)
    # the reference: untiled on the GPU (before the cap); in the dry run (whole frames "do not fit") small tiles
    ref_cfg = dataclasses.replace(cfg, tile=16, tile_overlap=4) if dry else cfg
    ref = list(Engine(model, ref_cfg).run(frames))
    eng = Engine(model, cfg)
    if dry:
        got = list(eng.run(frames))
    else:
        _, total = torch.cuda.mem_get_info(device)
        used = torch.cuda.memory_allocated(device)
        # room for the weights and a few tiles, not for a whole 540p frame through the network
        torch.cuda.set_per_process_memory_fraction(min(0.95, (used + 1.5 * 2**30) / total), device)
        try:
            got = list(eng.run(frames))
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, device)
            torch.cuda.empty_cache()
    psnr = min(_psnr(torch.from_numpy(a) / 255.0, torch.from_numpy(b) / 255.0) for a, b in zip(got, ref))
    ok = len(got) == len(frames) and eng.times.oom_retries >= 1 and psnr >= 40
    rep.add("oom back-off", ok, retries=eng.times.oom_retries, final_tile=eng.layout.tile, frames=len(got),
            psnr_vs_reference=psnr)


def check_colour(rep: Report, device, work: Path) -> None:
    import av

    from tests.data import VIDEOS
    from upvid.io.span import Span
    from upvid.job import EngineFactory, JobOptions, run_job

    src = VIDEOS / "imageio" / "realshort.mp4"
    if not src.is_file():
        rep.add("colour path", None, skipped=f"{src} absent")
        return
    outs = {}
    for on in (True, False):
        opts = JobOptions(model="bicubic", scale=2, device=str(device), colour_in_engine=on, audio_codec="none",
                          crf=4, span=Span(0, 12), backend="torch")
        out = work / f"colour-{on}.mkv"
        run_job(src, out, opts, EngineFactory(opts))
        outs[on] = out

    def planes(p):
        with av.open(str(p)) as c:
            return [f.to_ndarray() for _, f in zip(range(12), c.decode(video=0))]

    a, b, s = planes(outs[True]), planes(outs[False]), planes(src)
    h2 = a[0].shape[0] * 2 // 3
    rgb = [av.VideoFrame.from_ndarray(x, format="yuv420p").to_ndarray(format="rgb24") for x in a]
    rgb_ref = [av.VideoFrame.from_ndarray(x, format="yuv420p").to_ndarray(format="rgb24") for x in b]
    psnr = min(_psnr(torch.from_numpy(x) / 255.0, torch.from_numpy(y) / 255.0) for x, y in zip(rgb, rgb_ref))
    mean_in = float(np.mean([x[: x.shape[0] * 2 // 3].mean() for x in s]))
    mean_out = float(np.mean([x[:h2].mean() for x in a]))
    ok = psnr >= 38 and abs(mean_out - mean_in) < 0.25
    rep.add("colour path", ok, device=str(device), psnr_vs_swscale_rgb=psnr, mean_luma_in=mean_in,
            mean_luma_out=mean_out)


def check_compile(rep: Report, device, size) -> None:
    from upvid.engine import Engine, EngineConfig

    m = _model("rlfn-x4", device)
    frames = _frames(3, *size)
    cfg = EngineConfig.for_model(m, tile=0, device=device, dtype=torch.float32)
    ref = list(Engine(m, cfg).run(frames))
    t0 = time.perf_counter()
    got = list(Engine(m, dataclasses.replace(cfg, compile=True)).run(frames))
    diff = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(got, ref))
    rep.add("compile rlfn-x4", diff <= 2, max_level_diff=diff, first_run_s=time.perf_counter() - t0)


def check_throughput(rep: Report, device, size, frames: int, work: Path, models: list[str]) -> None:
    from upvid.bench.speed import make_speed_clip, run_speed
    from upvid.engine import Engine, EngineConfig

    dt = torch.bfloat16 if device.type == "cuda" else torch.float32
    clip = make_speed_clip(work / f"speed_{size[0]}x{size[1]}.mp4", frames, size[0], size[1])
    for name in models:
        def one(name=name):
            m = _model(name, device)
            cfg = EngineConfig.for_model(m, tile=None, device=device, dtype=dt)
            data = _frames(frames, *size)
            list(Engine(m, cfg).run(data[: min(len(data), 2)]))  # warm-up (planner, kernels)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            eng = Engine(m, cfg)
            n = sum(1 for _ in eng.run(data))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            model_fps = n / (time.perf_counter() - t0)
            r = run_speed(name, video=clip, repeats=1, warmup=0, pretrained=False, device=str(device),
                          dtype="bf16" if device.type == "cuda" else "fp32", backend="torch", workdir=work)
            rep.add(f"throughput {name}", True, lr=f"{size[1]}x{size[0]}", hr=f"{size[1] * m.scale}x{size[0] * m.scale}",
                    frames=n, model_only_fps=model_fps, end_to_end_fps=r.fps["end_to_end"],
                    encode_fps=r.fps["encode"], tile=eng.layout.tile, chunk=eng.layout.chunk)

        rep.guard(f"throughput {name}", one)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny inputs: the same code paths, for CI")
    ap.add_argument("--frames", type=int, default=8, help="frames per throughput run (540p)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--only", nargs="*", default=None,
                    help="checks to run: precision planner oom colour compile throughput")
    a = ap.parse_args(argv)
    if not a.dry_run and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU machine, or use --dry-run", file=sys.stderr)
        return 2
    device = torch.device("cpu" if a.dry_run else "cuda")
    small = (16, 16) if a.dry_run else (540, 960)  # precision/compile inputs
    stream = (48, 64) if a.dry_run else (540, 960)  # planner / OOM / throughput
    frames = 2 if a.dry_run else a.frames
    clip = 2 if a.dry_run else 10
    only = set(a.only or ["precision", "planner", "oom", "colour", "compile", "throughput"])
    rep = Report()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="upvid-gpu-check-") as d:
        work = Path(d)
        print(f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else " (dry run)")
              + f", torch {torch.__version__}", flush=True)
        if "precision" in only:
            check_precision(rep, device, small if a.dry_run else (270, 480), clip)
        if "planner" in only:
            rep.guard("planner basicvsrpp", lambda: check_planner(rep, device, stream))
        if "oom" in only:
            rep.guard("oom back-off", lambda: check_oom_backoff(rep, device, stream, a.dry_run))
        if "colour" in only:
            rep.guard("colour path", lambda: check_colour(rep, device, work))
        if "compile" in only and not a.dry_run:  # torch.compile on CPU costs minutes in CI; its code path is the same
            rep.guard("compile rlfn-x4", lambda: check_compile(rep, device, small))
        if "throughput" in only:
            check_throughput(rep, device, stream, frames, work, DRY_THROUGHPUT_MODELS if a.dry_run else THROUGHPUT_MODELS)
    total = time.perf_counter() - t0
    failed = [r["check"] for r in rep.rows if r["ok"] is False]
    print(f"{len(rep.rows)} checks, {len(failed)} failed{': ' + ', '.join(failed) if failed else ''}; {total:.0f} s",
          flush=True)
    if a.json:
        a.json.write_text(json.dumps({"device": str(device), "dry_run": a.dry_run, "seconds": total,
                                      "checks": rep.rows}, indent=1, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
