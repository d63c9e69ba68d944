"""Speed of the real pipeline per stage (decode, model, stitch, encode), optionally in a child process.

The protocol and the ``upvid.bench.speed/1`` schema are in :mod:`upvid.bench`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from upvid.bench.host import MIB, cpu_name, library_versions, lifetime_peak_mib, reset_peak_rss, rss_mib
from upvid.bench.options import SpeedOptions
from upvid.bench.schema import DTYPE_NAMES, SPEED_SCHEMA, finite
from upvid.errors import InputError, UpvidError, UsageError


@dataclass
class SpeedRun:
    """One timed run of the whole pipeline (seconds are wall clock, summed per stage)."""

    decode_s: float
    model_s: float
    stitch_s: float
    encode_s: float
    total_s: float
    frames: int
    peak_rss_mib: float
    cuda_peak_allocated_mib: float | None = None


@dataclass
class SpeedResult:
    """Outcome of :func:`run_speed`; :meth:`to_json` gives the ``upvid.bench.speed/1`` schema."""

    model: str
    pretrained: bool
    scale: int
    device: str
    device_name: str
    dtype: str
    engine: dict[str, int]
    input: dict[str, Any]
    encoder: dict[str, Any]
    warmup: int
    runs: list[SpeedRun]
    load_s: float
    warmup_s: float
    memory: dict[str, Any]
    isolated: bool = False
    backend: dict[str, str] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def seconds(self) -> dict[str, float]:
        """Median seconds per stage over the timed runs (``end_to_end``: wall time)."""
        keys = {"decode": "decode_s", "model": "model_s", "stitch": "stitch_s", "encode": "encode_s",
                "end_to_end": "total_s"}
        return {k: float(statistics.median(getattr(r, a) for r in self.runs)) for k, a in keys.items()}

    @property
    def fps(self) -> dict[str, float]:
        """Frames per second per stage: frames / median seconds (``inf`` for a stage that took no time)."""
        n = self.input["frames"]
        return {k: (n / v if v > 0 else math.inf) for k, v in self.seconds.items()}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        out: dict[str, Any] = {"schema": SPEED_SCHEMA}
        for k in ("model", "pretrained", "scale", "device", "device_name", "dtype", "backend", "engine", "input",
                  "encoder", "warmup"):
            out[k] = d[k]
        out["repeats"] = len(self.runs)
        out["seconds"] = self.seconds
        out["fps"] = self.fps
        out["memory"] = d["memory"]
        out["runs"] = d["runs"]
        for k in ("load_s", "warmup_s", "isolated", "host", "versions", "created"):
            out[k] = d[k]
        return out

    def to_json(self, indent: int | None = 2) -> str:
        """The result as JSON (schema ``upvid.bench.speed/1``)."""
        return json.dumps(finite(self.to_dict()), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpeedResult:
        """Inverse of :meth:`to_dict` (used to bring a result back from the child process)."""
        kw = {k: d[k] for k in ("model", "pretrained", "scale", "device", "device_name", "dtype", "engine", "input",
                                "encoder", "warmup", "load_s", "warmup_s", "memory", "isolated", "host", "versions",
                                "created")}
        kw["backend"] = d.get("backend", {})
        kw["runs"] = [SpeedRun(**r) for r in d["runs"]]
        return cls(**kw)


def make_speed_clip(path: str | os.PathLike, frames: int, height: int, width: int, fps: int = 25) -> Path:
    """A synthetic H.264 (crf 18) + AAC clip with moving texture, for speed runs.

    Content: drifting sinusoidal gratings over a fixed random texture that pans one pixel per
    frame, so the decoder and encoder see real motion and detail (not flat frames).
    """
    from upvid.io.images import encode_clip

    if frames < 1 or height < 1 or width < 1:
        raise UsageError(f"--frames and --size must be positive, got {frames} frames of {height}x{width}")
    rng = np.random.default_rng(0)
    tex = rng.integers(0, 64, size=(height, width + frames, 3), dtype=np.int16)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)

    def gen() -> Iterator[np.ndarray]:
        for t in range(frames):
            base = 96 + 64 * np.sin(xx / 9.0 + t * 0.21) * np.cos(yy / 13.0 - t * 0.13)
            img = base[..., None] + tex[:, t : t + width] + np.array([0, 16, -16], dtype=np.float32)
            yield np.clip(img, 0, 255).astype(np.uint8)

    p = Path(path)
    encode_clip(gen(), p, fps=fps, crf=18)
    return p


def run_speed_many(
    models: list[str],
    *,
    video: str | os.PathLike | None = None,
    size: tuple[int, int] = (180, 320),
    options: SpeedOptions | None = None,
    isolate: bool = False,
    on_result: Callable[[SpeedResult], None] | None = None,
    backends: list[str] | None = None,
    **settings: Any,
) -> list[SpeedResult]:
    """:func:`run_speed` for several models (and backends) on the same clip (the synthetic one is made once).

    Args:
        models: model names.
        video: a clip to decode (default: a synthetic ``size`` clip of ``options.frames`` frames, 32 by default).
        size: ``(height, width)`` of the synthetic LR clip.
        options: the run's settings (:class:`~upvid.bench.options.SpeedOptions`).
        isolate: measure each model in a fresh child process (clean peak RSS).
        on_result: called with each model's result as soon as it is done.
        backends: run each model on each of these (``torch``, ``openvino``, ``auto``), side by side;
            default: ``options.backend``.
        **settings: :class:`SpeedOptions` fields that replace those of ``options``.
    """
    opts = SpeedOptions.of(options, **settings)
    with tempfile.TemporaryDirectory(prefix="upvid-bench-") as d:
        if video is None:
            n = 32 if opts.frames is None else opts.frames
            clip = make_speed_clip(Path(d) / f"synthetic_{size[0]}x{size[1]}.mp4", n, size[0], size[1])
            label = "synthetic"
        else:
            clip = Path(video)
            if not clip.is_file():
                raise InputError(f"{clip}: no such video file")
            label = str(clip)
        out = []
        for m in models:
            for b in backends or [opts.backend]:
                r = run_speed(m, video=clip, options=dataclasses.replace(opts, backend=b), isolate=isolate,
                              workdir=Path(d), source_label=label)
                out.append(r)
                if on_result is not None:
                    on_result(r)
        return out


def run_speed(
    model_name: str,
    *,
    video: str | os.PathLike | None = None,
    size: tuple[int, int] = (180, 320),
    options: SpeedOptions | None = None,
    isolate: bool = False,
    workdir: Path | None = None,
    source_label: str | None = None,
    **settings: Any,
) -> SpeedResult:
    """Time decode, model, stitch and encode of the real pipeline on a clip (see :mod:`upvid.bench`).

    Args:
        model_name: a ``weights.toml`` model.
        video: the clip (default: a synthetic ``size`` clip of ``options.frames`` frames, made in a temp dir).
        size: ``(height, width)`` of the synthetic LR clip.
        options: the run's settings (:class:`~upvid.bench.options.SpeedOptions`).
        isolate: run the measurement in a fresh child process (clean peak RSS).
        workdir: folder for the encoded output (default: a temp dir).
        source_label: ``input.source`` in the report (default: the video path, or ``"synthetic"``).
        **settings: :class:`SpeedOptions` fields that replace those of ``options``
            (``frames=``, ``repeats=``, ``device=``, ``preset=``, ...).

    Raises:
        UsageError: bad repeats/size/settings; InputError: unreadable clip; UnknownModelError,
        WeightsError, EncodeError: from the model and the encoder.
    """
    opts = SpeedOptions.of(options, **settings)
    if opts.repeats < 1 or opts.warmup < 0:
        raise UsageError(f"--repeats must be >= 1 (got {opts.repeats}) and warm-up runs >= 0 (got {opts.warmup})")
    if opts.frames is not None and opts.frames < 1:
        raise UsageError(f"--frames must be >= 1, got {opts.frames}")
    if video is None:
        return run_speed_many([model_name], size=size, options=opts, isolate=isolate)[0]
    if not Path(video).is_file():
        raise InputError(f"{video}: no such video file")
    job = {"model_name": model_name, "video": str(video), "options": opts.to_json(),
           "workdir": str(workdir) if workdir else None, "source_label": source_label or str(video)}
    if isolate:
        return _speed_in_child(job)
    return _speed_job(job)


def _speed_job(job: dict[str, Any]) -> SpeedResult:
    return _speed(job["model_name"], job["video"], SpeedOptions.from_json(job["options"]), job["workdir"],
                  job["source_label"])


def _speed_in_child(job: dict[str, Any]) -> SpeedResult:
    """Run :func:`_speed` in ``python -m upvid.bench --child``: the job as JSON on stdin, the result on stdout."""
    proc = subprocess.Popen([sys.executable, "-m", "upvid.bench", "--child"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=None, text=True)
    try:
        out, _ = proc.communicate(json.dumps(job))
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    try:
        msg = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    except ValueError:
        msg = {}
    if "result" in msg:
        r = SpeedResult.from_dict(msg["result"])
        r.isolated = True
        return r
    if "error" in msg:
        import upvid.errors as errors

        cls = getattr(errors, msg["error"], None)
        if isinstance(cls, type) and issubclass(cls, UpvidError):
            raise cls(msg["message"])
        raise RuntimeError(f"speed child failed: {msg['error']}: {msg['message']}")
    raise RuntimeError(f"speed child exited with code {proc.returncode} and no result")


def child_main() -> int:
    """Entry point of the isolated speed child (``python -m upvid.bench --child``)."""
    job = json.loads(sys.stdin.read())
    try:
        r = _speed_job(job)
        msg: dict[str, Any] = {"result": finite(r.to_dict())}
    except UpvidError as e:
        msg = {"error": type(e).__name__, "message": str(e)}
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - reported to the parent
        msg = {"error": type(e).__name__, "message": str(e)}
    sys.stdout.write(json.dumps(msg) + "\n")
    return 0


def _speed(model_name: str, video: str, opts: SpeedOptions, workdir: str | None, source_label: str) -> SpeedResult:
    from upvid.engine import Engine, EngineConfig, resolve_device, resolve_dtype
    from upvid.engine.openvino import choose_backend
    from upvid.engine.pipeline import run_pipeline
    from upvid.io import VideoWriter, probe, read_frames

    frames, repeats, warmup = opts.frames, opts.repeats, opts.warmup
    codec, crf, preset, pix_fmt = opts.codec, opts.crf, opts.preset, opts.pix_fmt
    dev = resolve_device(opts.device)
    dt = resolve_dtype(opts.dtype, dev)
    info = probe(video)
    t0 = time.perf_counter()
    net = opts.load(model_name, dev)
    load_s = time.perf_counter() - t0
    s = net.scale
    cfg = EngineConfig.for_model(net, **opts.engine_kw(), device=dev, dtype=dt)
    backend, precision, why = choose_backend(opts.backend, net, dev, dt, dtype_explicit=opts.dtype != "auto")
    cfg = dataclasses.replace(cfg, backend=backend, precision=precision)
    cuda = dev.type == "cuda"
    per_run_rss = reset_peak_rss()

    with tempfile.TemporaryDirectory(prefix="upvid-speed-", dir=workdir) as d:
        out_path = Path(d) / "out.mp4"

        layouts: list[Any] = []

        def once() -> SpeedRun:
            reset = reset_peak_rss()
            if cuda:
                torch.cuda.synchronize(dev)
                torch.cuda.reset_peak_memory_stats(dev)
            t_open = time.perf_counter()
            writer = VideoWriter(out_path, info, width=info.width * s, height=info.height * s, codec=codec, crf=crf,
                                 preset=preset, pix_fmt=pix_fmt, copy_streams=False)
            try:
                # as `upvid IN OUT` does: the colour conversions run in the engine (4:2:0 both ways)
                run_cfg = dataclasses.replace(cfg, yuv_out=writer.yuv_target)
                src = islice(read_frames(video, info, high_bit_depth=False, yuv=True), frames)
                engine = Engine(net, run_cfg)
                stats = run_pipeline(src, engine, writer.write)
                layouts.append(engine.layout)  # as the planner and the OOM back-off left it
                t_flush = time.perf_counter()
                writer.close()
            except BaseException:
                writer.abort()
                raise
            t_end = time.perf_counter()
            out_path.unlink(missing_ok=True)
            if stats.frames == 0:
                raise InputError(f"{video}: no decodable video frame")
            peak = rss_mib("VmHWM") if reset else None
            return SpeedRun(
                decode_s=stats.decode_s, model_s=stats.model_s, stitch_s=stats.stitch_s,
                encode_s=stats.encode_s + (t_end - t_flush), total_s=t_end - t_open, frames=stats.frames,
                peak_rss_mib=round(peak if peak is not None else lifetime_peak_mib(), 1),
                cuda_peak_allocated_mib=round(torch.cuda.max_memory_allocated(dev) / MIB, 1) if cuda else None,
            )

        t0 = time.perf_counter()
        for _ in range(warmup):
            once()
        warmup_s = time.perf_counter() - t0
        rss_after_load = rss_mib("VmRSS")
        runs = [once() for _ in range(repeats)]
        cuda_reserved = round(torch.cuda.max_memory_reserved(dev) / MIB, 1) if cuda else None

    n = runs[0].frames
    return SpeedResult(
        model=model_name, pretrained=bool(opts.pretrained and net.record.weights), scale=s, device=str(dev),
        device_name=torch.cuda.get_device_name(dev) if cuda else cpu_name(), dtype=DTYPE_NAMES[dt],
        backend={"name": backend, "precision": precision, "reason": why},
        engine={"chunk": layouts[-1].chunk, "overlap": cfg.overlap, "tile": layouts[-1].tile,
                "tile_overlap": layouts[-1].tile_overlap},
        input={"source": source_label, "codec": info.codec, "frames": n, "lr_size": [info.height, info.width],
               "hr_size": [info.height * s, info.width * s]},
        encoder={"codec": codec, "crf": crf, "preset": preset, "pix_fmt": pix_fmt},
        warmup=warmup, runs=runs, load_s=round(load_s, 4), warmup_s=round(warmup_s, 4),
        memory={"peak_rss_mib": max(r.peak_rss_mib for r in runs),
                "rss_method": "VmHWM per run" if per_run_rss else "ru_maxrss (process)",
                "rss_after_load_mib": round(rss_after_load, 1) if rss_after_load is not None else None,
                "cuda_peak_allocated_mib": max(r.cuda_peak_allocated_mib or 0.0 for r in runs) if cuda else None,
                "cuda_peak_reserved_mib": cuda_reserved},
        host={"cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "platform": platform.platform()},
        versions=library_versions(),
    )
