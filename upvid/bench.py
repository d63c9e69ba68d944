"""``upvid bench``: quality (PSNR/SSIM) on the standard VSR test sets, measured the literature's way.

Quality path (:func:`run_quality`): for every ground-truth sequence of a dataset folder, the GT
is cropped to a multiple of the scale, degraded to the low-resolution input (BI: MATLAB bicubic
:func:`upvid.degrade.bi_degrade`; BD: Gaussian blur + subsample :func:`upvid.degrade.bd_degrade`;
both rounded to 8 bits like the published LR PNGs) or read from an ``lr_dir``, upscaled by the
model through the streaming engine exactly as ``upvid IN OUT`` would (same clips, overlaps,
tiles; 8-bit rounded output), and scored per frame with :mod:`upvid.metrics`: PSNR-Y and SSIM-Y
(BT.601, unrounded Y; Vid4/UDM10/Vimeo convention) and RGB PSNR (REDS4 convention), border crop
``crop_border`` (0 in BasicVSR-family tables). Sequence score = mean over its frames; dataset
score = mean over sequences.

The pseudo-model ``"matlab-bicubic"`` (:data:`MATLAB_BICUBIC`) upscales with MATLAB's bicubic
(:func:`upvid.degrade.imresize`) instead of a network: the "Bicubic" row of the papers' tables
(Vid4 BI x4: 23.78 dB / 0.6347), a check of the protocol itself. The registry's ``bicubic``
model is PyTorch's bicubic (``a = -0.75``), which scores differently (about +0.1 dB on Vid4).

Dataset layout: ``dataset_dir`` holds one sub-folder of frames (PNG, 8-bit RGB) per sequence,
e.g. ``vid4/GT/{calendar,city,foliage,walk}/*.png``; a folder that itself contains images is
one sequence. If ``dataset_dir`` has a ``GT`` sub-folder, that is used. ``lr_dir`` (optional)
has the same sequence names with the matching LR frames.

JSON schema of :meth:`QualityResult.to_json` (``"schema": "upvid.bench.quality/1"``; keys are
only ever added within a schema version)::

    {
      "schema": "upvid.bench.quality/1",
      "model": str, "pretrained": bool,
      "dataset": str,                # label, e.g. "vid4" (folder name; "GT" resolves to its parent)
      "dataset_dir": str,            # absolute path of the GT sequences
      "lr_source": str,              # "BI" / "BD" (synthesised) or the lr_dir path
      "degradation": "BI" | "BD", "scale": int, "crop_border": int,
      "device": str, "dtype": "fp32" | "fp16" | "bf16",
      "engine": {"chunk": int, "overlap": int, "tile": int, "tile_overlap": int},
      "sequences": [
        {"name": str, "frames": int, "lr_size": [h, w], "hr_size": [h, w],
         "psnr_y": float, "ssim_y": float, "psnr_rgb": float,     # means over frames (dB, -, dB)
         "model_s": float,                                        # wall s inside the engine
         "frame_psnr_y": [float, ...]}                            # per frame, in order
      ],
      "average": {"psnr_y": float, "ssim_y": float, "psnr_rgb": float},  # mean over sequences
      "frames": int,                 # total frames scored
      "timing": {"total_s": float, "model_s": float, "degrade_s": float, "metrics_s": float,
                 "read_s": float, "fps": float},   # fps = frames / model_s
      "published": {"dataset": str, "degradation": str, "psnr": float | null,
                    "ssim": float | null, "source": str} | null,
      "versions": {"upvid": str, "torch": str},
      "created": str                 # ISO 8601 UTC
    }

Infinite PSNRs (identical frames) are written as the JSON string ``"inf"``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from upvid import __version__
from upvid import metrics as M
from upvid.degrade import bd_degrade, bi_degrade, imresize
from upvid.errors import InputError, UsageError

__all__ = [
    "MATLAB_BICUBIC",
    "PUBLISHED_BASELINES",
    "SequenceQuality",
    "QualityResult",
    "find_sequences",
    "run_quality",
    "render_quality",
    "main_quality",
]

SCHEMA = "upvid.bench.quality/1"
MATLAB_BICUBIC = "matlab-bicubic"
Degradation = Literal["BI", "BD"]

#: The "Bicubic" rows of the literature (x4, PSNR-Y dB / SSIM-Y), as tabulated in BasicVSR
#: (Chan et al., CVPR 2021) and the VSR surveys that copy it (Vid4 BI seen in two public copies,
#: Vimeo-90K-T BI in one). Vid4 BI is reproduced by ``matlab-bicubic`` to 0.01 dB.
PUBLISHED_BASELINES: dict[tuple[str, str], tuple[float, float]] = {
    ("vid4", "BI"): (23.78, 0.6347),
    ("vimeo90k-t", "BI"): (31.32, 0.8684),
}

_DEGRADE_CHUNK = 8  # frames degraded at once (bounds float64 memory on 720p sequences)


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
        d = {"schema": SCHEMA}
        body = asdict(self)
        created = body.pop("created")
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
        return json.dumps(_finite(self.to_dict()), indent=indent)


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return "inf" if x > 0 else ("-inf" if x < 0 else "nan")
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def _dataset_label(gt_dir: Path) -> str:
    name = gt_dir.name if gt_dir.name.lower() not in {"gt", "hr", "test"} else gt_dir.parent.name
    return name.lower()


def find_sequences(dataset_dir: str | os.PathLike) -> tuple[Path, list[Path]]:
    """Resolve the GT folder and its sequence folders (see the module docstring for the layout).

    Returns:
        ``(gt_dir, [sequence folders, sorted by name])``.

    Raises:
        InputError: the folder is missing or holds no images.
    """
    from upvid.io.images import IMAGE_SUFFIXES

    root = Path(dataset_dir)
    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found")
    if (root / "GT").is_dir():
        root = root / "GT"

    def has_images(p: Path) -> bool:
        return any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir())

    subs = sorted(p for p in root.iterdir() if p.is_dir() and has_images(p))
    if subs:
        return root, subs
    if has_images(root):
        return root, [root]
    raise InputError(f"{root}: no sequence folders of images")


def _read_sequence(folder: Path, max_frames: int | None) -> np.ndarray:
    from upvid.io.images import list_images, read_image

    files = list_images(folder)[: max_frames or None]
    frames = [read_image(f) for f in files]
    if any(f.dtype != np.uint8 for f in frames):
        raise InputError(f"{folder}: the benchmark expects 8-bit RGB frames")
    if len({f.shape for f in frames}) != 1:
        raise InputError(f"{folder}: frames differ in size")
    return np.stack(frames)


def _degrade(gt: np.ndarray, scale: int, degradation: str) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 GT -> ``(T, H/s, W/s, 3)`` uint8 LR."""
    fn = bi_degrade if degradation == "BI" else bd_degrade
    out = []
    for i in range(0, len(gt), _DEGRADE_CHUNK):
        hr = torch.from_numpy(gt[i : i + _DEGRADE_CHUNK]).permute(0, 3, 1, 2)
        out.append(fn(hr, scale).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def _matlab_bicubic_frames(lr: np.ndarray, scale: int) -> Iterator[np.ndarray]:
    for i in range(0, len(lr), _DEGRADE_CHUNK):
        x = torch.from_numpy(lr[i : i + _DEGRADE_CHUNK]).permute(0, 3, 1, 2)
        yield from imresize(x, scale).permute(0, 2, 3, 1).numpy()


def run_quality(
    model_name: str,
    dataset_dir: str | os.PathLike,
    degradation: Degradation = "BI",
    scale: int | None = None,
    device: str = "cpu",
    dtype: str = "fp32",
    *,
    crop_border: int = 0,
    lr_dir: str | os.PathLike | None = None,
    sequences: list[str] | None = None,
    max_frames: int | None = None,
    chunk: int | None = None,
    overlap: int | None = None,
    tile: int | None = None,
    tile_overlap: int | None = None,
    pretrained: bool = True,
    weights_dir: Path | None = None,
    model: Any = None,
    on_sequence: Callable[[SequenceQuality], None] | None = None,
) -> QualityResult:
    """Score a model on a dataset of GT sequences (protocol in the module docstring).

    Args:
        model_name: a ``weights.toml`` model, or ``"matlab-bicubic"`` for the literature's baseline.
        dataset_dir: folder of GT sequences (or its parent holding ``GT/``).
        degradation: ``"BI"`` (MATLAB bicubic down) or ``"BD"`` (Gaussian sigma 1.6 blur + subsample).
        scale: upscaling factor (default: the model's; 4 for ``matlab-bicubic``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        dtype: ``"auto"``, ``"fp32"``, ``"fp16"``, ``"bf16"``.
        crop_border: pixels cropped from each side before scoring.
        lr_dir: use these LR frames (same sequence names) instead of synthesising them.
        sequences: only these sequence names.
        max_frames: only the first N frames of each sequence (quick runs; not comparable to papers).
        chunk, overlap, tile, tile_overlap: engine settings (default: the model's record).
        pretrained: load the checkpoint (``False``: random weights, for tests).
        weights_dir: local checkpoint folder.
        model: an already built :class:`upvid.models.Upscaler` to use instead of loading one.
        on_sequence: called with each sequence's scores as soon as it is done.

    Raises:
        InputError: missing/unreadable data, LR/GT size mismatch.
        UsageError: bad degradation/scale, unknown sequence names.
        UnknownModelError, WeightsError: from model loading.
    """
    from upvid.engine import Engine, EngineConfig, resolve_device, resolve_dtype

    t_start = time.perf_counter()
    degradation = degradation.upper()  # type: ignore[assignment]
    if degradation not in ("BI", "BD"):
        raise UsageError(f"degradation must be BI or BD, got {degradation!r}")
    gt_dir, seq_dirs = find_sequences(dataset_dir)
    if sequences:
        known = {p.name: p for p in seq_dirs}
        missing = [s for s in sequences if s not in known]
        if missing:
            raise UsageError(f"unknown sequence(s) {', '.join(missing)}; available: {', '.join(known)}")
        seq_dirs = [known[s] for s in sequences]

    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    dt_name = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dt]
    engine_cfg: dict[str, int] = {}
    if model_name == MATLAB_BICUBIC and model is None:
        scale = 4 if scale is None else scale
        net = None
    else:
        if model is None:
            from upvid.models import load_model

            model = load_model(model_name, scale, pretrained=pretrained, weights_dir=weights_dir, device=dev)
        net = model
        scale = net.scale
        cfg0 = EngineConfig.for_model(net, chunk=chunk, overlap=overlap, tile=tile, tile_overlap=tile_overlap,
                                      device=dev, dtype=dt)
        engine_cfg = {"chunk": cfg0.chunk, "overlap": cfg0.overlap, "tile": cfg0.tile,
                      "tile_overlap": cfg0.tile_overlap}
    if not isinstance(scale, int) or scale < 1:
        raise UsageError(f"scale must be a positive integer, got {scale!r}")

    timing = {"read_s": 0.0, "degrade_s": 0.0, "model_s": 0.0, "metrics_s": 0.0}
    results: list[SequenceQuality] = []
    for seq in seq_dirs:
        t0 = time.perf_counter()
        gt = _read_sequence(seq, max_frames)
        t, h, w, _ = gt.shape
        gt = gt[:, : h - h % scale, : w - w % scale]
        if lr_dir is not None:
            lr = _read_sequence(Path(lr_dir) / seq.name, max_frames)
            timing["read_s"] += time.perf_counter() - t0
            if lr.shape[0] != gt.shape[0] or lr.shape[1] * scale != gt.shape[1] or lr.shape[2] * scale != gt.shape[2]:
                raise InputError(f"{seq.name}: LR {lr.shape[:3]} does not match GT {gt.shape[:3]} at x{scale}")
        else:
            timing["read_s"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            lr = _degrade(gt, scale, degradation)
            timing["degrade_s"] += time.perf_counter() - t0

        if net is None:
            outputs: Iterator[np.ndarray] = _matlab_bicubic_frames(lr, scale)
        else:
            cfg = EngineConfig.for_model(net, chunk=chunk, overlap=overlap, tile=tile, tile_overlap=tile_overlap,
                                         device=dev, dtype=dt)
            outputs = Engine(net, cfg).run(iter(lr))
        p_y: list[float] = []
        s_y: list[float] = []
        p_rgb: list[float] = []
        model_s = metrics_s = 0.0
        t0 = time.perf_counter()
        for i, sr in enumerate(outputs):
            t1 = time.perf_counter()
            model_s += t1 - t0
            if sr.shape != gt[i].shape:
                raise InputError(f"{seq.name}: model output {sr.shape} != GT {gt[i].shape}")
            p_y.append(M.psnr_y(gt[i], sr, crop_border=crop_border))
            s_y.append(M.ssim_y(gt[i], sr, crop_border=crop_border))
            p_rgb.append(M.psnr_rgb(gt[i], sr, crop_border=crop_border))
            t0 = time.perf_counter()
            metrics_s += t0 - t1
        if len(p_y) != len(gt):
            raise InputError(f"{seq.name}: {len(p_y)} output frames for {len(gt)} inputs")
        timing["model_s"] += model_s
        timing["metrics_s"] += metrics_s
        r = SequenceQuality(
            name=seq.name, frames=len(gt), lr_size=(int(lr.shape[1]), int(lr.shape[2])),
            hr_size=(int(gt.shape[1]), int(gt.shape[2])), psnr_y=float(np.mean(p_y)), ssim_y=float(np.mean(s_y)),
            psnr_rgb=float(np.mean(p_rgb)), model_s=model_s, frame_psnr_y=p_y,
        )
        results.append(r)
        if on_sequence is not None:
            on_sequence(r)

    timing["total_s"] = time.perf_counter() - t_start
    n = sum(r.frames for r in results)
    timing["fps"] = n / timing["model_s"] if timing["model_s"] > 0 else math.inf
    label = _dataset_label(gt_dir)
    return QualityResult(
        model=model_name, pretrained=pretrained if net is not None else False, dataset=label,
        dataset_dir=str(gt_dir.resolve()), lr_source=str(Path(lr_dir).resolve()) if lr_dir else degradation,
        degradation=degradation, scale=scale, crop_border=crop_border, device=str(dev), dtype=dt_name,
        engine=engine_cfg, sequences=results, timing=timing,
        published=_published(model_name, net, label, degradation, scale, full=max_frames is None and not sequences),
    )


def _published(model_name: str, net: Any, dataset: str, degradation: str, scale: int, full: bool) -> dict | None:
    """The published number for this (model, dataset, degradation), if there is one and it applies."""
    if not full or scale != 4:
        return None
    if net is None or model_name == "bicubic":
        ref = PUBLISHED_BASELINES.get((dataset, degradation))
        if ref is None:
            return None
        return {"dataset": dataset, "degradation": degradation, "psnr": ref[0], "ssim": ref[1],
                "source": "Bicubic row, BasicVSR (CVPR 2021) Table 2 (MATLAB bicubic)"}
    rec = net.record
    if rec.degradation and rec.degradation.upper() != degradation:
        return None
    psnr = rec.psnr.get(dataset)
    if psnr is None:
        return None
    return {"dataset": dataset, "degradation": degradation, "psnr": psnr, "ssim": None,
            "source": f"weights.toml [models.{rec.name}].psnr ({rec.paper or rec.repo})"}


def render_quality(result: QualityResult, console: Any = None) -> None:
    """Print ``result`` as a Rich table on stderr (or on ``console``)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=True, highlight=False)
    title = (f"{result.model} x{result.scale} on {result.dataset} ({result.lr_source}), "
             f"{result.device} {result.dtype}, crop {result.crop_border}")
    table = Table(title=title, title_justify="left")
    for col in ("sequence", "frames", "LR size", "PSNR-Y", "SSIM-Y", "PSNR-RGB", "model fps"):
        table.add_column(col, justify="left" if col == "sequence" else "right")

    def fmt(x: float, nd: int) -> str:
        return "inf" if math.isinf(x) else f"{x:.{nd}f}"

    for s in result.sequences:
        fps = s.frames / s.model_s if s.model_s > 0 else math.inf
        table.add_row(s.name, str(s.frames), f"{s.lr_size[1]}x{s.lr_size[0]}", fmt(s.psnr_y, 2), fmt(s.ssim_y, 4),
                      fmt(s.psnr_rgb, 2), fmt(fps, 2))
    avg = result.average
    table.add_section()
    table.add_row("average", str(result.frames), "", fmt(avg["psnr_y"], 2), fmt(avg["ssim_y"], 4),
                  fmt(avg["psnr_rgb"], 2), fmt(result.timing["fps"], 2), style="bold")
    pub = result.published
    if pub:
        metric = "psnr_rgb" if result.dataset.startswith("reds") else "psnr_y"
        ssim = "" if pub.get("ssim") is None else f"{pub['ssim']:.4f}"
        cells = {"psnr_y": "", "psnr_rgb": ""}
        cells[metric] = f"{pub['psnr']:.2f}"
        table.add_row("published", "", "", cells["psnr_y"], ssim if metric == "psnr_y" else "", cells["psnr_rgb"], "",
                      style="dim")
    console.print(table)
    t = result.timing
    console.print(f"total {t['total_s']:.1f} s (read {t['read_s']:.1f}, degrade {t['degrade_s']:.1f}, "
                  f"model {t['model_s']:.1f}, metrics {t['metrics_s']:.1f})", style="dim")


def main_quality(
    model_name: str,
    dataset_dir: str | os.PathLike,
    *,
    json_out: str | os.PathLike | None = None,
    quiet: bool = False,
    **kwargs: Any,
) -> QualityResult:
    """What ``upvid bench quality`` does: :func:`run_quality`, the table on stderr, optional JSON.

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
