"""Quality on a dataset or a video: GT -> LR (degraded or read) -> the streaming engine -> PSNR/SSIM-Y.

The protocol and the ``upvid.bench.quality/1`` schema are in :mod:`upvid.bench`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from upvid import __version__
import upvid.bench.metrics as M
from upvid.bench.datasets import dataset_label, find_sequences, image_stream, published_score, video_stream
from upvid.bench.degrade import bd_degrade, bi_degrade, imresize
from upvid.bench.options import QualityOptions
from upvid.bench.report import render_quality
from upvid.bench.schema import DTYPE_NAMES, SCHEMA, finite
from upvid.errors import InputError, UsageError

MATLAB_BICUBIC = "matlab-bicubic"
Degradation = Literal["BI", "BD"]


@dataclass
class SequenceQuality:
    """Scores of one sequence (means over its frames)."""

    name: str
    frames: int
    lr_size: tuple[int, int]
    hr_size: tuple[int, int]
    psnr_y: float
    ssim_y: float
    psnr_rgb: float
    model_s: float
    frame_psnr_y: list[float] = field(default_factory=list)


@dataclass
class QualityResult:
    """Outcome of :func:`run_quality`; :meth:`to_json` gives the documented schema (module docstring)."""

    model: str
    pretrained: bool
    dataset: str
    dataset_dir: str
    lr_source: str
    degradation: str
    scale: int
    crop_border: int
    device: str
    dtype: str
    engine: dict[str, int]
    sequences: list[SequenceQuality]
    timing: dict[str, float]
    published: dict[str, Any] | None = None
    source: str = "dataset"
    sigma: float | None = None
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.sequences)

    @property
    def average(self) -> dict[str, float]:
        """Dataset scores: the mean over sequences of the per-sequence means."""
        return {k: M.mean_of_means([[getattr(s, k)] for s in self.sequences]) for k in ("psnr_y", "ssim_y", "psnr_rgb")}

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form of the JSON schema (floats may be ``inf``)."""
        body = asdict(self)
        created = body.pop("created")
        d: dict[str, Any] = {"schema": SCHEMA, "model": body.pop("model"), "pretrained": body.pop("pretrained"),
                             "source": body.pop("source")}
        d.update(body)
        for s in d["sequences"]:
            s["lr_size"], s["hr_size"] = list(s["lr_size"]), list(s["hr_size"])
        d["average"] = self.average
        d["frames"] = self.frames
        d["versions"] = {"upvid": __version__, "torch": torch.__version__}
        d["created"] = created
        return d

    def to_json(self, indent: int | None = 2) -> str:
        """The result as JSON (schema ``upvid.bench.quality/1``); ``inf`` becomes ``"inf"``."""
        return json.dumps(finite(self.to_dict()), indent=indent)


# (name, GT frame stream, LR frame stream or None to synthesise)
_Item = tuple[str, Callable[[], Iterator[np.ndarray]], "Callable[[], Iterator[np.ndarray]] | None"]


def run_quality(
    model_name: str,
    dataset_dir: str | os.PathLike,
    degradation: Degradation | None = None,
    *,
    options: QualityOptions | None = None,
    lr_dir: str | os.PathLike | None = None,
    sequences: list[str] | None = None,
    model: Any = None,
    on_sequence: Callable[[SequenceQuality], None] | None = None,
    **settings: Any,
) -> QualityResult:
    """Score a model on a dataset of GT sequences (protocol in :mod:`upvid.bench`).

    Args:
        model_name: a ``weights.toml`` model, or ``"matlab-bicubic"`` for the literature's baseline.
        dataset_dir: folder of GT sequences (or its parent holding ``GT/``).
        degradation: ``"BI"`` or ``"BD"`` (overrides ``options.degradation``).
        options: the run's settings (:class:`~upvid.bench.options.QualityOptions`; default: its defaults).
        lr_dir: use these LR frames (same sequence names) instead of synthesising them.
        sequences: only these sequence names.
        model: an already built :class:`upvid.models.Upscaler` to use instead of loading one.
        on_sequence: called with each sequence's scores as soon as it is done.
        **settings: :class:`QualityOptions` fields that replace those of ``options``
            (``scale=``, ``sigma=``, ``max_frames=``, ...).

    Raises:
        InputError: missing/unreadable data, LR/GT size mismatch.
        UsageError: bad degradation/scale, unknown sequence names or settings.
        UnknownModelError, WeightsError: from model loading.
    """
    if degradation is not None:
        settings["degradation"] = degradation
    opts = QualityOptions.of(options, **settings)
    gt_dir, seq_dirs = find_sequences(dataset_dir)
    if sequences:
        known = {p.name: p for p in seq_dirs}
        missing = [s for s in sequences if s not in known]
        if missing:
            raise UsageError(f"unknown sequence(s) {', '.join(missing)}; available: {', '.join(known)}")
        seq_dirs = [known[s] for s in sequences]
    if lr_dir is not None and not Path(lr_dir).is_dir():
        raise InputError(f"{lr_dir}: LR folder not found")
    items: list[_Item] = []
    for seq in seq_dirs:
        gt_fn = partial(image_stream, seq, opts.max_frames)
        lr_fn = None if lr_dir is None else partial(image_stream, Path(lr_dir) / seq.name, opts.max_frames)
        items.append((seq.name, gt_fn, lr_fn))
    label = dataset_label(gt_dir)
    data = _Data(label=label, path=str(gt_dir.resolve()), source="dataset",
                 lr_source=str(Path(lr_dir).resolve()) if lr_dir else None,
                 full=opts.max_frames is None and not sequences)
    return _quality(model_name, items, data, opts, model, on_sequence)


def run_quality_video(
    model_name: str,
    video: str | os.PathLike,
    degradation: Degradation | None = None,
    *,
    options: QualityOptions | None = None,
    model: Any = None,
    on_sequence: Callable[[SequenceQuality], None] | None = None,
    **settings: Any,
) -> QualityResult:
    """Score a model on a video's own frames: they are the GT, degraded (BI by default) to the input.

    The frames are decoded to 8-bit RGB (:func:`upvid.io.read_frames`), cropped to a multiple of
    the scale, degraded, upscaled and compared with the decoded originals. Arguments as in
    :func:`run_quality`; ``video`` is any file ``upvid`` can read.

    Raises:
        InputError: missing/unreadable video, no frames.
    """
    if degradation is not None:
        settings["degradation"] = degradation
    opts = QualityOptions.of(options, **settings)
    path = Path(video)
    if not path.is_file():
        raise InputError(f"{path}: no such video file")
    items: list[_Item] = [(path.stem, lambda: video_stream(path, opts.max_frames), None)]
    data = _Data(label=path.name, path=str(path.resolve()), source="video", lr_source=None, full=False)
    return _quality(model_name, items, data, opts, model, on_sequence)


@dataclass(frozen=True)
class _Data:
    """What is scored: its label, path, kind and LR origin; ``full``: the whole dataset (published scores apply)."""

    label: str
    path: str
    source: str
    lr_source: str | None
    full: bool


def _quality(model_name: str, items: list[_Item], data: _Data, opts: QualityOptions, model: Any,
             on_sequence: Callable[[SequenceQuality], None] | None) -> QualityResult:
    from upvid.engine import Engine, EngineConfig, resolve_device, resolve_dtype

    t_start = time.perf_counter()
    degradation = str(opts.degradation).upper()
    sigma, crop_border, scale = opts.sigma, opts.crop_border, opts.scale
    if degradation not in ("BI", "BD"):
        raise UsageError(f"degradation must be BI or BD, got {opts.degradation!r}")
    if degradation == "BD" and not (sigma > 0):
        raise UsageError(f"--sigma must be > 0, got {sigma}")
    if crop_border < 0:
        raise UsageError(f"--crop-border must be >= 0, got {crop_border}")
    dev = resolve_device(opts.device)
    dt = resolve_dtype(opts.dtype, dev)
    engine_kw = dict(opts.engine_kw(), device=dev, dtype=dt)
    engine_cfg: dict[str, int] = {}
    if model_name == MATLAB_BICUBIC and model is None:
        scale = 4 if scale is None else scale
        net = None
    else:
        net = model if model is not None else opts.load(model_name, dev)
        scale = net.scale
        cfg0 = EngineConfig.for_model(net, **engine_kw)
        engine_cfg = {"chunk": cfg0.chunk, "overlap": cfg0.overlap, "tile": cfg0.tile, "tile_overlap": cfg0.tile_overlap}
    if not isinstance(scale, int) or scale < 1:
        raise UsageError(f"scale must be a positive integer, got {scale!r}")

    timing = {"read_s": 0.0, "degrade_s": 0.0, "model_s": 0.0, "metrics_s": 0.0}
    results: list[SequenceQuality] = []
    for name, gt_fn, lr_fn in items:
        engine = None if net is None else Engine(net, EngineConfig.for_model(net, **engine_kw))
        r = _score_sequence(name, gt_fn(), None if lr_fn is None else lr_fn(), engine, scale, degradation, sigma,
                            crop_border, timing)
        results.append(r)
        if on_sequence is not None:
            on_sequence(r)

    timing["total_s"] = time.perf_counter() - t_start
    n = sum(r.frames for r in results)
    timing["fps"] = n / timing["model_s"] if timing["model_s"] > 0 else math.inf
    synth = data.lr_source is None
    return QualityResult(
        model=model_name, pretrained=bool(opts.pretrained and net is not None and net.record.weights),
        dataset=data.label, dataset_dir=data.path, lr_source=degradation if synth else data.lr_source,
        degradation=degradation, scale=scale, crop_border=crop_border, device=str(dev), dtype=DTYPE_NAMES[dt],
        engine=engine_cfg, sequences=results, timing=timing, source=data.source,
        sigma=float(sigma) if synth and degradation == "BD" else None,
        published=published_score(model_name, net, data.label, degradation, scale,
                                  full=data.full and data.source == "dataset"),
    )


def _score_sequence(
    name: str,
    gt_frames: Iterator[np.ndarray],
    lr_frames: Iterator[np.ndarray] | None,
    engine: Any,
    scale: int,
    degradation: str,
    sigma: float,
    crop_border: int,
    timing: dict[str, float],
) -> SequenceQuality:
    """Stream one sequence: GT -> LR (read or degraded) -> model -> scores; GT frames wait in a queue
    only until their output arrives."""
    pending: deque[np.ndarray] = deque()
    sizes: dict[str, tuple[int, int]] = {}
    acc = {"read": 0.0, "degrade": 0.0}

    def lr_stream() -> Iterator[np.ndarray]:
        while True:
            t0 = time.perf_counter()
            try:
                gt = next(gt_frames)
            except StopIteration:
                break
            h, w = gt.shape[:2]
            gt = gt[: h - h % scale, : w - w % scale]
            if gt.shape[0] == 0 or gt.shape[1] == 0:
                raise InputError(f"{name}: frames of {w}x{h} are smaller than the scale {scale}")
            if lr_frames is not None:
                try:
                    lr = next(lr_frames)
                except StopIteration:
                    raise InputError(f"{name}: fewer LR frames than GT frames") from None
                acc["read"] += time.perf_counter() - t0
                if lr.shape[0] * scale != gt.shape[0] or lr.shape[1] * scale != gt.shape[1]:
                    raise InputError(f"{name}: LR {lr.shape[1]}x{lr.shape[0]} does not match GT "
                                     f"{gt.shape[1]}x{gt.shape[0]} at x{scale}")
            else:
                t1 = time.perf_counter()
                acc["read"] += t1 - t0
                hr = torch.from_numpy(np.ascontiguousarray(gt)).permute(2, 0, 1)[None]
                lr_t = bi_degrade(hr, scale) if degradation == "BI" else bd_degrade(hr, scale, sigma)
                lr = lr_t[0].permute(1, 2, 0).contiguous().numpy()
                acc["degrade"] += time.perf_counter() - t1
            sizes.setdefault("lr", (int(lr.shape[0]), int(lr.shape[1])))
            sizes.setdefault("hr", (int(gt.shape[0]), int(gt.shape[1])))
            pending.append(gt)
            yield lr
        if lr_frames is not None and next(lr_frames, None) is not None:
            raise InputError(f"{name}: more LR frames than GT frames")

    if engine is None:
        outputs: Iterable[np.ndarray] = (
            imresize(torch.from_numpy(lr).permute(2, 0, 1)[None], scale)[0].permute(1, 2, 0).numpy()
            for lr in lr_stream()
        )
    else:
        outputs = engine.run(lr_stream())
    p_y: list[float] = []
    s_y: list[float] = []
    p_rgb: list[float] = []
    metrics_s = 0.0
    t_loop = time.perf_counter()
    for sr in outputs:
        t1 = time.perf_counter()
        if not pending:
            raise InputError(f"{name}: the model gave more output frames than inputs")
        gt = pending.popleft()
        if sr.shape != gt.shape:
            raise InputError(f"{name}: model output {sr.shape} != GT {gt.shape}")
        p_y.append(M.psnr_y(gt, sr, crop_border=crop_border))
        s_y.append(M.ssim_y(gt, sr, crop_border=crop_border))
        p_rgb.append(M.psnr_rgb(gt, sr, crop_border=crop_border))
        metrics_s += time.perf_counter() - t1
    loop_s = time.perf_counter() - t_loop
    if pending or not p_y:
        raise InputError(f"{name}: {len(p_y)} output frames for {len(p_y) + len(pending)} inputs")
    model_s = max(0.0, loop_s - metrics_s - acc["read"] - acc["degrade"])
    timing["read_s"] += acc["read"]
    timing["degrade_s"] += acc["degrade"]
    timing["model_s"] += model_s
    timing["metrics_s"] += metrics_s
    return SequenceQuality(
        name=name, frames=len(p_y), lr_size=sizes["lr"], hr_size=sizes["hr"], psnr_y=float(np.mean(p_y)),
        ssim_y=float(np.mean(s_y)), psnr_rgb=float(np.mean(p_rgb)), model_s=model_s, frame_psnr_y=p_y,
    )


def main_quality(
    model_name: str,
    dataset_dir: str | os.PathLike,
    *,
    json_out: str | os.PathLike | None = None,
    quiet: bool = False,
    **kwargs: Any,
) -> QualityResult:
    """:func:`run_quality`, the table on stderr, optional JSON (``"-"``: stdout; else a file path).

    Args:
        model_name, dataset_dir, **kwargs: passed to :func:`run_quality`.
        json_out: write the JSON there; ``"-"`` prints it on stdout.
        quiet: no table.

    Returns:
        The result.
    """
    result = run_quality(model_name, dataset_dir, **kwargs)
    if not quiet:
        render_quality(result)
    if json_out is not None:
        text = result.to_json()
        if str(json_out) == "-":
            print(text)
        else:
            Path(json_out).write_text(text + "\n")
    return result
