"""``upvid bench``: quality (PSNR/SSIM) the VSR literature's way, and speed per pipeline stage.

**Quality on a dataset** (:func:`run_quality`): for every ground-truth sequence of a dataset
folder, the GT is cropped to a multiple of the scale, degraded to the low-resolution input (BI:
MATLAB bicubic :func:`upvid.degrade.bi_degrade`; BD: Gaussian blur of ``sigma`` (1.6) + subsample
:func:`upvid.degrade.bd_degrade`; both rounded to 8 bits like the published LR PNGs) or read from
an ``lr_dir``, upscaled by the model through the streaming engine exactly as ``upvid IN OUT``
would (same clips, overlaps, tiles; 8-bit rounded output), and scored per frame with
:mod:`upvid.metrics` (the functions the tests use): PSNR-Y and SSIM-Y (BT.601, unrounded Y;
Vid4/UDM10/Vimeo convention) and RGB PSNR (REDS4 convention), border crop ``crop_border`` (0 in
BasicVSR-family tables). Sequence score = mean over its frames; dataset score = mean over
sequences. Frames stream through: memory holds only the frames the engine has in flight.

**Quality on a video** (:func:`run_quality_video`): the video's own decoded frames are the GT
(cropped to a multiple of the scale), degraded the same way, upscaled and scored; one "sequence".

The pseudo-model ``"matlab-bicubic"`` (:data:`MATLAB_BICUBIC`) upscales with MATLAB's bicubic
(:func:`upvid.degrade.imresize`) instead of a network: the "Bicubic" row of the papers' tables
(Vid4 BI x4: 23.78 dB / 0.6347, reproduced exactly), a check of the protocol itself. The
registry's ``bicubic`` model is PyTorch's bicubic (``a = -0.75``), which scores differently.

Dataset layout: ``dataset_dir`` holds one sub-folder of frames (PNG, 8-bit RGB) per sequence,
e.g. ``vid4/GT/{calendar,city,foliage,walk}/*.png``; a folder that itself contains images is
one sequence. If ``dataset_dir`` has a ``GT`` sub-folder, that is used. ``lr_dir`` (optional)
has the same sequence names with the matching LR frames.

**Speed** (:func:`run_speed`): the real upscale pipeline (:func:`upvid.io.read_frames` decode
thread -> :class:`upvid.engine.Engine` -> :class:`upvid.io.VideoWriter` x264 encode thread,
joined by :func:`upvid.engine.pipeline.run_pipeline`) on a clip (a given video, or a synthetic
H.264 clip of ``size`` and ``frames``), ``warmup`` untimed runs, then ``repeats`` timed runs;
the report is the median of each stage's seconds and fps = frames / seconds. The stages run
in parallel threads, so a stage's fps is its own throughput (what the pipeline would reach if
that stage were the only cost); ``end_to_end`` = frames / wall time from opening the encoder
to closing the file (its flush included). Peak host RSS is per run (``VmHWM`` reset through
``/proc/self/clear_refs`` before each run; elsewhere the process-lifetime ``ru_maxrss``); peak
CUDA memory is ``torch.cuda.max_memory_allocated`` (reset before each run). With
``isolate=True`` each model is measured in a fresh child process, so its peak RSS does not see
what other models or the caller left behind. The audio/subtitle remux that ``upvid IN OUT``
does after encoding is not part of it (it copies packets; it does not scale with the model).

**Compare**: the CLI runs several models on the same data and prints one table; the JSON is
``{"schema": "upvid.bench.compare/1", "kind": "quality" | "speed", "models": [...],
"results": [<one quality/1 or speed/1 object per model>]}``.

JSON schemas (keys are only ever added within a schema version; infinite PSNRs, from identical
frames, are written as the string ``"inf"``).

``upvid.bench.quality/1`` (:meth:`QualityResult.to_json`)::

    {
      "schema": "upvid.bench.quality/1",
      "model": str, "pretrained": bool,  # checkpoint loaded (false: random weights, or none needed)
      "source": "dataset" | "video",
      "dataset": str,                # label, e.g. "vid4" (folder name; "GT" resolves to its parent),
                                     # or the video's file name
      "dataset_dir": str,            # absolute path of the GT sequences (or of the video)
      "lr_source": str,              # "BI" / "BD" (synthesised) or the lr_dir path
      "degradation": "BI" | "BD", "sigma": float | null,   # sigma: BD blur (null for BI / lr_dir)
      "scale": int, "crop_border": int,
      "device": str, "dtype": "fp32" | "fp16" | "bf16",
      "engine": {"chunk": int, "overlap": int, "tile": int, "tile_overlap": int},  # {} for matlab-bicubic
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

``upvid.bench.speed/1`` (:meth:`SpeedResult.to_json`)::

    {
      "schema": "upvid.bench.speed/1",
      "model": str, "pretrained": bool, "scale": int,
      "device": str, "device_name": str, "dtype": "fp32" | "fp16" | "bf16",
      "engine": {"chunk": int, "overlap": int, "tile": int, "tile_overlap": int},
      "input": {"source": "synthetic" | <video path>, "codec": str, "frames": int,
                "lr_size": [h, w], "hr_size": [h, w]},
      "encoder": {"codec": str, "crf": int, "preset": str, "pix_fmt": str},
      "warmup": int, "repeats": int,
      "seconds": {"decode": float, "model": float, "stitch": float, "encode": float,
                  "end_to_end": float},                     # medians over the timed runs
      "fps": {"decode": float, "model": float, "stitch": float, "encode": float,
              "end_to_end": float},                         # frames / seconds
      "memory": {"peak_rss_mib": float, "rss_method": "VmHWM per run" | "ru_maxrss (process)",
                 "rss_after_load_mib": float | null,        # resident after loading + warm-up
                 "cuda_peak_allocated_mib": float | null, "cuda_peak_reserved_mib": float | null},
      "runs": [{"decode_s": float, "model_s": float, "stitch_s": float, "encode_s": float,
                "total_s": float, "frames": int, "peak_rss_mib": float,
                "cuda_peak_allocated_mib": float | null}, ...],
      "load_s": float, "warmup_s": float, "isolated": bool,
      "host": {"cpu": str, "cpu_count": int, "torch_threads": int, "platform": str},
      "versions": {"upvid": str, "torch": str, "torchvision": str | null, "av": str,
                   "ffmpeg_libavcodec": str | null, "numpy": str, "python": str, "cuda": str | null},
      "created": str
    }
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from upvid import __version__
from upvid import metrics as M
from upvid.degrade import bd_degrade, bi_degrade, imresize
from upvid.errors import InputError, UpvidError, UsageError

__all__ = [
    "MATLAB_BICUBIC",
    "PUBLISHED_BASELINES",
    "SequenceQuality",
    "QualityResult",
    "SpeedRun",
    "SpeedResult",
    "find_sequences",
    "run_quality",
    "run_quality_video",
    "run_speed",
    "run_speed_many",
    "make_speed_clip",
    "compare_json",
    "render_quality",
    "render_quality_compare",
    "render_speed",
    "main_quality",
]

SCHEMA = "upvid.bench.quality/1"
SPEED_SCHEMA = "upvid.bench.speed/1"
COMPARE_SCHEMA = "upvid.bench.compare/1"
MATLAB_BICUBIC = "matlab-bicubic"
Degradation = Literal["BI", "BD"]

#: The "Bicubic" rows of the literature (x4, PSNR-Y dB / SSIM-Y), as tabulated in BasicVSR
#: (Chan et al., CVPR 2021) and the VSR surveys that copy it (Vid4 BI seen in two public copies,
#: Vimeo-90K-T BI in one). Vid4 BI is reproduced by ``matlab-bicubic`` to 0.01 dB.
PUBLISHED_BASELINES: dict[tuple[str, str], tuple[float, float]] = {
    ("vid4", "BI"): (23.78, 0.6347),
    ("vimeo90k-t", "BI"): (31.32, 0.8684),
}

_DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
_MIB = 1024.0 * 1024.0


# =================================================================================================
# Quality
# =================================================================================================
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
        try:
            return any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir())
        except OSError as e:
            raise InputError(f"{p}: cannot list ({e.strerror or e})") from e

    subs = sorted(p for p in root.iterdir() if p.is_dir() and has_images(p))
    if subs:
        return root, subs
    if has_images(root):
        return root, [root]
    raise InputError(f"{root}: no sequence folders of images")


def _image_stream(folder: Path, max_frames: int | None) -> Iterator[np.ndarray]:
    """8-bit RGB frames of an image folder, all of one size."""
    from upvid.io.images import list_images, read_image

    shape = None
    for f in list_images(folder)[: max_frames or None]:
        img = read_image(f)
        if img.dtype != np.uint8:
            raise InputError(f"{f}: the benchmark expects 8-bit RGB frames")
        if shape is None:
            shape = img.shape
        elif img.shape != shape:
            raise InputError(f"{folder}: frames differ in size ({f.name} is {img.shape[1]}x{img.shape[0]})")
        yield img


def _video_stream(path: Path, max_frames: int | None) -> Iterator[np.ndarray]:
    """8-bit RGB frames decoded from a video."""
    from upvid.io import probe, read_frames

    info = probe(path)
    n = 0
    for f in islice(read_frames(path, info, high_bit_depth=False), max_frames):
        n += 1
        yield f.rgb
    if n == 0:
        raise InputError(f"{path}: no decodable video frame")


# (name, GT frame stream, LR frame stream or None to synthesise)
_Item = tuple[str, Callable[[], Iterator[np.ndarray]], "Callable[[], Iterator[np.ndarray]] | None"]


def run_quality(
    model_name: str,
    dataset_dir: str | os.PathLike,
    degradation: Degradation = "BI",
    scale: int | None = None,
    device: str = "cpu",
    dtype: str = "fp32",
    *,
    sigma: float = 1.6,
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
        degradation: ``"BI"`` (MATLAB bicubic down) or ``"BD"`` (Gaussian blur + subsample).
        scale: upscaling factor (default: the model's; 4 for ``matlab-bicubic``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        dtype: ``"auto"``, ``"fp32"``, ``"fp16"``, ``"bf16"``.
        sigma: BD blur standard deviation in HR pixels (1.6: the DUF/BasicVSR protocol).
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
        gt_fn = (lambda p=seq: _image_stream(p, max_frames))
        lr_fn = None if lr_dir is None else (lambda p=Path(lr_dir) / seq.name: _image_stream(p, max_frames))
        items.append((seq.name, gt_fn, lr_fn))
    label = _dataset_label(gt_dir)
    return _quality(
        model_name, items, label=label, path=str(gt_dir.resolve()), source="dataset",
        lr_source=str(Path(lr_dir).resolve()) if lr_dir else None, degradation=degradation, scale=scale,
        device=device, dtype=dtype, sigma=sigma, crop_border=crop_border, chunk=chunk, overlap=overlap, tile=tile,
        tile_overlap=tile_overlap, pretrained=pretrained, weights_dir=weights_dir, model=model,
        on_sequence=on_sequence, full=max_frames is None and not sequences,
    )


def run_quality_video(
    model_name: str,
    video: str | os.PathLike,
    degradation: Degradation = "BI",
    scale: int | None = None,
    device: str = "cpu",
    dtype: str = "fp32",
    *,
    sigma: float = 1.6,
    crop_border: int = 0,
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
    """Score a model on a video's own frames: they are the GT, degraded (BI by default) to the input.

    The frames are decoded to 8-bit RGB (:func:`upvid.io.read_frames`), cropped to a multiple of
    the scale, degraded, upscaled and compared with the decoded originals. Arguments as in
    :func:`run_quality`; ``video`` is any file ``upvid`` can read.

    Raises:
        InputError: missing/unreadable video, no frames.
    """
    path = Path(video)
    if not path.is_file():
        raise InputError(f"{path}: no such video file")
    items: list[_Item] = [(path.stem, lambda: _video_stream(path, max_frames), None)]
    return _quality(
        model_name, items, label=path.name, path=str(path.resolve()), source="video", lr_source=None,
        degradation=degradation, scale=scale, device=device, dtype=dtype, sigma=sigma, crop_border=crop_border,
        chunk=chunk, overlap=overlap, tile=tile, tile_overlap=tile_overlap, pretrained=pretrained,
        weights_dir=weights_dir, model=model, on_sequence=on_sequence, full=False,
    )


def _quality(
    model_name: str,
    items: list[_Item],
    *,
    label: str,
    path: str,
    source: str,
    lr_source: str | None,
    degradation: str,
    scale: int | None,
    device: str,
    dtype: str,
    sigma: float,
    crop_border: int,
    chunk: int | None,
    overlap: int | None,
    tile: int | None,
    tile_overlap: int | None,
    pretrained: bool,
    weights_dir: Path | None,
    model: Any,
    on_sequence: Callable[[SequenceQuality], None] | None,
    full: bool,
) -> QualityResult:
    from upvid.engine import Engine, EngineConfig, resolve_device, resolve_dtype

    t_start = time.perf_counter()
    degradation = str(degradation).upper()
    if degradation not in ("BI", "BD"):
        raise UsageError(f"degradation must be BI or BD, got {degradation!r}")
    if degradation == "BD" and not (sigma > 0):
        raise UsageError(f"--sigma must be > 0, got {sigma}")
    if crop_border < 0:
        raise UsageError(f"--crop-border must be >= 0, got {crop_border}")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    engine_kw = dict(chunk=chunk, overlap=overlap, tile=tile, tile_overlap=tile_overlap, device=dev, dtype=dt)
    engine_cfg: dict[str, int] = {}
    if model_name == MATLAB_BICUBIC and model is None:
        scale = 4 if scale is None else scale
        net = None
    else:
        net = model if model is not None else _load(model_name, scale, pretrained, weights_dir, dev)
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
    synth = lr_source is None
    return QualityResult(
        model=model_name, pretrained=bool(pretrained and net is not None and net.record.weights), dataset=label, dataset_dir=path,
        lr_source=degradation if synth else lr_source, degradation=degradation, scale=scale,
        crop_border=crop_border, device=str(dev), dtype=_DTYPE_NAMES[dt], engine=engine_cfg, sequences=results,
        timing=timing, source=source, sigma=float(sigma) if synth and degradation == "BD" else None,
        published=_published(model_name, net, label, degradation, scale, full=full and source == "dataset"),
    )


def _load(model_name: str, scale: int | None, pretrained: bool, weights_dir: Path | None, dev: torch.device) -> Any:
    from upvid.models import load_model

    return load_model(model_name, scale, pretrained=pretrained, weights_dir=weights_dir, device=dev)


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


def _fmt(x: float, nd: int) -> str:
    return "inf" if math.isinf(x) else f"{x:.{nd}f}"


def _console(console: Any) -> Any:
    from rich.console import Console

    return console or Console(stderr=True, highlight=False)


def _quality_title(r: QualityResult) -> str:
    deg = r.lr_source if r.lr_source not in ("BI", "BD") else (
        f"BD sigma {r.sigma:g}" if r.degradation == "BD" and r.sigma is not None else r.degradation)
    return f"x{r.scale} on {r.dataset} ({deg}), {r.device} {r.dtype}, crop {r.crop_border}"


def render_quality(result: QualityResult, console: Any = None) -> None:
    """Print ``result`` as a Rich table on stderr (or on ``console``)."""
    from rich.table import Table

    console = _console(console)
    table = Table(title=f"{result.model} {_quality_title(result)}", title_justify="left")
    for col in ("sequence", "frames", "LR size", "PSNR-Y", "SSIM-Y", "PSNR-RGB", "model fps"):
        table.add_column(col, justify="left" if col == "sequence" else "right")
    for s in result.sequences:
        fps = s.frames / s.model_s if s.model_s > 0 else math.inf
        table.add_row(s.name, str(s.frames), f"{s.lr_size[1]}x{s.lr_size[0]}", _fmt(s.psnr_y, 2), _fmt(s.ssim_y, 4),
                      _fmt(s.psnr_rgb, 2), _fmt(fps, 2))
    avg = result.average
    table.add_section()
    table.add_row("average", str(result.frames), "", _fmt(avg["psnr_y"], 2), _fmt(avg["ssim_y"], 4),
                  _fmt(avg["psnr_rgb"], 2), _fmt(result.timing["fps"], 2), style="bold")
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


def render_quality_compare(results: list[QualityResult], console: Any = None) -> None:
    """Several models on the same data in one Rich table: PSNR-Y and SSIM-Y per model (REDS: RGB PSNR
    and PSNR-Y); the JSON has every metric."""
    from rich.table import Table

    console = _console(console)
    first = results[0]
    reds = first.dataset.startswith("reds")
    cols = (("PSNR-RGB", "psnr_rgb", 2), ("PSNR-Y", "psnr_y", 2)) if reds else (("PSNR-Y", "psnr_y", 2),
                                                                                 ("SSIM-Y", "ssim_y", 4))
    console.print(f"{' vs '.join(r.model for r in results)}: {_quality_title(first)}", style="bold")
    table = Table()
    table.add_column("sequence")
    table.add_column("frames", justify="right")
    for r in results:
        for label, _, _ in cols:
            table.add_column(f"{r.model}\n{label}", justify="right")
    names = list(dict.fromkeys(s.name for r in results for s in r.sequences))
    for name in names:
        seqs = [next((s for s in r.sequences if s.name == name), None) for r in results]
        row = [name, str(next(s.frames for s in seqs if s is not None))]
        for s in seqs:
            row += ["-"] * len(cols) if s is None else [_fmt(getattr(s, k), nd) for _, k, nd in cols]
        table.add_row(*row)
    table.add_section()
    row = ["average", str(first.frames)]
    for r in results:
        row += [_fmt(r.average[k], nd) for _, k, nd in cols]
    table.add_row(*row, style="bold")
    if any(r.published for r in results):
        row = ["published", ""]
        for r in results:
            p = r.published or {}
            vals = {"psnr_rgb" if reds else "psnr_y": p.get("psnr"), "ssim_y": p.get("ssim")}
            row += ["" if vals.get(k) is None else _fmt(vals[k], nd) for _, k, nd in cols]
        table.add_row(*row, style="dim")
    console.print(table)
    console.print("; ".join(f"{r.model}: model {_fmt(r.timing['fps'], 2)} fps, total {r.timing['total_s']:.1f} s"
                            for r in results), style="dim")


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


def compare_json(kind: str, results: list[Any], indent: int | None = 2) -> str:
    """The ``upvid.bench.compare/1`` JSON of several quality or speed results."""
    body = {"schema": COMPARE_SCHEMA, "kind": kind, "models": [r.model for r in results],
            "results": [r.to_dict() for r in results]}
    return json.dumps(_finite(body), indent=indent)


# =================================================================================================
# Speed
# =================================================================================================
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
        for k in ("model", "pretrained", "scale", "device", "device_name", "dtype", "engine", "input", "encoder",
                  "warmup"):
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
        return json.dumps(_finite(self.to_dict()), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpeedResult:
        """Inverse of :meth:`to_dict` (used to bring a result back from the child process)."""
        kw = {k: d[k] for k in ("model", "pretrained", "scale", "device", "device_name", "dtype", "engine", "input",
                                "encoder", "warmup", "load_s", "warmup_s", "memory", "isolated", "host", "versions",
                                "created")}
        kw["runs"] = [SpeedRun(**r) for r in d["runs"]]
        return cls(**kw)


def _rss_mib(key: str) -> float | None:
    """``VmHWM`` / ``VmRSS`` of this process in MiB (Linux), else ``None``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's ``VmHWM`` to its current RSS (Linux >= 4.0); ``False`` if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _rss_mib("VmHWM") is not None
    except OSError:
        return False


def _lifetime_peak_mib() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (_MIB if sys.platform == "darwin" else 1024.0)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict[str, Any]:
    import av

    try:
        import torchvision

        tv: str | None = torchvision.__version__
    except Exception:  # noqa: BLE001 - optional
        tv = None
    libs = getattr(av, "library_versions", {}) or {}
    codec = libs.get("libavcodec")
    return {"upvid": __version__, "torch": torch.__version__, "torchvision": tv, "av": av.__version__,
            "ffmpeg_libavcodec": ".".join(map(str, codec)) if codec else None, "numpy": np.__version__,
            "python": platform.python_version(), "cuda": torch.version.cuda if torch.cuda.is_available() else None}


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
    frames: int | None = None,
    isolate: bool = False,
    on_result: Callable[[SpeedResult], None] | None = None,
    **kwargs: Any,
) -> list[SpeedResult]:
    """:func:`run_speed` for several models on the same clip (the synthetic one is made once).

    Args:
        models: model names.
        video: a clip to decode (default: a synthetic ``size`` clip of ``frames`` frames, 32 by default).
        size: ``(height, width)`` of the synthetic LR clip.
        frames: synthetic clip length, or the first N frames of ``video`` (default: all of them).
        isolate: measure each model in a fresh child process (clean peak RSS).
        on_result: called with each model's result as soon as it is done.
        **kwargs: passed to :func:`run_speed`.
    """
    with tempfile.TemporaryDirectory(prefix="upvid-bench-") as d:
        if video is None:
            n = 32 if frames is None else frames
            clip = make_speed_clip(Path(d) / f"synthetic_{size[0]}x{size[1]}.mp4", n, size[0], size[1])
            label = "synthetic"
        else:
            clip = Path(video)
            if not clip.is_file():
                raise InputError(f"{clip}: no such video file")
            label = str(clip)
        out = []
        for m in models:
            r = run_speed(m, video=clip, frames=frames, isolate=isolate, workdir=Path(d), source_label=label, **kwargs)
            out.append(r)
            if on_result is not None:
                on_result(r)
        return out


def run_speed(
    model_name: str,
    *,
    video: str | os.PathLike | None = None,
    size: tuple[int, int] = (180, 320),
    frames: int | None = None,
    repeats: int = 3,
    warmup: int = 1,
    scale: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    chunk: int | None = None,
    overlap: int | None = None,
    tile: int | None = None,
    tile_overlap: int | None = None,
    pretrained: bool = True,
    weights_dir: Path | None = None,
    codec: str = "libx264",
    crf: int = 18,
    preset: str = "medium",
    pix_fmt: str = "yuv420p",
    isolate: bool = False,
    workdir: Path | None = None,
    source_label: str | None = None,
) -> SpeedResult:
    """Time decode, model, stitch and encode of the real pipeline on a clip (see the module docstring).

    Args:
        model_name: a ``weights.toml`` model.
        video: the clip (default: a synthetic ``size`` clip of ``frames`` frames, made in a temp dir).
        size: ``(height, width)`` of the synthetic LR clip.
        frames: synthetic clip length (default 32), or only the first N frames of ``video``.
        repeats: timed runs (the median is reported).
        warmup: untimed runs first (model warm-up, allocator, caches).
        scale, device, dtype, chunk, overlap, tile, tile_overlap, pretrained, weights_dir: as for ``upvid``.
        codec, crf, preset, pix_fmt: the encoder (``upvid``'s defaults).
        isolate: run the measurement in a fresh child process (clean peak RSS).
        workdir: folder for the encoded output (default: a temp dir).
        source_label: ``input.source`` in the report (default: the video path, or ``"synthetic"``).

    Raises:
        UsageError: bad repeats/size; InputError: unreadable clip; UnknownModelError, WeightsError,
        EncodeError: from the model and the encoder.
    """
    if repeats < 1 or warmup < 0:
        raise UsageError(f"--repeats must be >= 1 (got {repeats}) and warm-up runs >= 0 (got {warmup})")
    if frames is not None and frames < 1:
        raise UsageError(f"--frames must be >= 1, got {frames}")
    if video is None:
        return run_speed_many([model_name], size=size, frames=frames, repeats=repeats, warmup=warmup, scale=scale,
                              device=device, dtype=dtype, chunk=chunk, overlap=overlap, tile=tile,
                              tile_overlap=tile_overlap, pretrained=pretrained, weights_dir=weights_dir, codec=codec,
                              crf=crf, preset=preset, pix_fmt=pix_fmt, isolate=isolate)[0]
    kw = dict(model_name=model_name, video=str(video), frames=frames, repeats=repeats, warmup=warmup, scale=scale,
              device=device, dtype=dtype, chunk=chunk, overlap=overlap, tile=tile, tile_overlap=tile_overlap,
              pretrained=pretrained, weights_dir=str(weights_dir) if weights_dir else None, codec=codec, crf=crf,
              preset=preset, pix_fmt=pix_fmt, workdir=str(workdir) if workdir else None,
              source_label=source_label or str(video))
    if not Path(video).is_file():
        raise InputError(f"{video}: no such video file")
    if isolate:
        return _speed_in_child(kw)
    return _speed(**kw)


def _speed_in_child(kw: dict[str, Any]) -> SpeedResult:
    """Run :func:`_speed` in ``python -m upvid.bench --child``: kwargs on stdin, JSON result on stdout."""
    proc = subprocess.Popen([sys.executable, "-m", "upvid.bench", "--child"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=None, text=True)
    try:
        out, _ = proc.communicate(json.dumps(kw))
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


def _child_main() -> int:
    """Entry point of the isolated speed child (``python -m upvid.bench --child``)."""
    kw = json.loads(sys.stdin.read())
    try:
        r = _speed(**kw)
        msg: dict[str, Any] = {"result": _finite(r.to_dict())}
    except UpvidError as e:
        msg = {"error": type(e).__name__, "message": str(e)}
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - reported to the parent
        msg = {"error": type(e).__name__, "message": str(e)}
    sys.stdout.write(json.dumps(msg) + "\n")
    return 0


def _speed(
    model_name: str,
    video: str,
    frames: int | None,
    repeats: int,
    warmup: int,
    scale: int | None,
    device: str,
    dtype: str,
    chunk: int | None,
    overlap: int | None,
    tile: int | None,
    tile_overlap: int | None,
    pretrained: bool,
    weights_dir: str | None,
    codec: str,
    crf: int,
    preset: str,
    pix_fmt: str,
    workdir: str | None,
    source_label: str,
) -> SpeedResult:
    from upvid.engine import Engine, EngineConfig, resolve_device, resolve_dtype
    from upvid.engine.pipeline import run_pipeline
    from upvid.io import VideoWriter, probe, read_frames

    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    info = probe(video)
    t0 = time.perf_counter()
    net = _load(model_name, scale, pretrained, Path(weights_dir) if weights_dir else None, dev)
    load_s = time.perf_counter() - t0
    s = net.scale
    cfg = EngineConfig.for_model(net, chunk=chunk, overlap=overlap, tile=tile, tile_overlap=tile_overlap, device=dev,
                                 dtype=dt)
    cuda = dev.type == "cuda"
    per_run_rss = _reset_peak_rss()

    with tempfile.TemporaryDirectory(prefix="upvid-speed-", dir=workdir) as d:
        out_path = Path(d) / "out.mp4"

        def once() -> SpeedRun:
            reset = _reset_peak_rss()
            if cuda:
                torch.cuda.synchronize(dev)
                torch.cuda.reset_peak_memory_stats(dev)
            t_open = time.perf_counter()
            writer = VideoWriter(out_path, info, width=info.width * s, height=info.height * s, codec=codec, crf=crf,
                                 preset=preset, pix_fmt=pix_fmt, copy_streams=False)
            try:
                # as `upvid IN OUT` does: on CUDA the colour conversions run in the engine (4:2:0 both ways)
                cfg.yuv_out = writer.yuv_target if cuda else None
                src = islice(read_frames(video, info, high_bit_depth=False, yuv=cuda), frames)
                stats = run_pipeline(src, Engine(net, cfg), writer.write)
                t_flush = time.perf_counter()
                writer.close()
            except BaseException:
                writer.abort()
                raise
            t_end = time.perf_counter()
            out_path.unlink(missing_ok=True)
            if stats.frames == 0:
                raise InputError(f"{video}: no decodable video frame")
            peak = _rss_mib("VmHWM") if reset else None
            return SpeedRun(
                decode_s=stats.decode_s, model_s=stats.model_s, stitch_s=stats.stitch_s,
                encode_s=stats.encode_s + (t_end - t_flush), total_s=t_end - t_open, frames=stats.frames,
                peak_rss_mib=round(peak if peak is not None else _lifetime_peak_mib(), 1),
                cuda_peak_allocated_mib=round(torch.cuda.max_memory_allocated(dev) / _MIB, 1) if cuda else None,
            )

        t0 = time.perf_counter()
        for _ in range(warmup):
            once()
        warmup_s = time.perf_counter() - t0
        rss_after_load = _rss_mib("VmRSS")
        runs = [once() for _ in range(repeats)]
        cuda_reserved = round(torch.cuda.max_memory_reserved(dev) / _MIB, 1) if cuda else None

    n = runs[0].frames
    return SpeedResult(
        model=model_name, pretrained=bool(pretrained and net.record.weights), scale=s, device=str(dev),
        device_name=torch.cuda.get_device_name(dev) if cuda else _cpu_name(), dtype=_DTYPE_NAMES[dt],
        engine={"chunk": cfg.chunk, "overlap": cfg.overlap, "tile": cfg.tile, "tile_overlap": cfg.tile_overlap},
        input={"source": source_label, "codec": info.codec, "frames": n, "lr_size": [info.height, info.width],
               "hr_size": [info.height * s, info.width * s]},
        encoder={"codec": codec, "crf": crf, "preset": preset, "pix_fmt": pix_fmt},
        warmup=warmup, runs=runs, load_s=round(load_s, 4), warmup_s=round(warmup_s, 4),
        memory={"peak_rss_mib": max(r.peak_rss_mib for r in runs),
                "rss_method": "VmHWM per run" if per_run_rss else "ru_maxrss (process)",
                "rss_after_load_mib": round(rss_after_load, 1) if rss_after_load is not None else None,
                "cuda_peak_allocated_mib": max(r.cuda_peak_allocated_mib or 0.0 for r in runs) if cuda else None,
                "cuda_peak_reserved_mib": cuda_reserved},
        host={"cpu": _cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "platform": platform.platform()},
        versions=_versions(),
    )


def render_speed(results: list[SpeedResult], console: Any = None) -> None:
    """Print one or more speed results as a Rich table on stderr (a column per model)."""
    from rich.table import Table

    console = _console(console)
    r0 = results[0]
    inp = r0.input
    title = (f"speed: {inp['frames']} frames {inp['lr_size'][1]}x{inp['lr_size'][0]} -> "
             f"{inp['hr_size'][1]}x{inp['hr_size'][0]} ({inp['source']}), {r0.device_name}, "
             f"median of {len(r0.runs)} after {r0.warmup} warm-up")
    console.print(title, style="bold")
    table = Table()
    table.add_column("")
    for r in results:
        table.add_column(f"{r.model}\nx{r.scale} {r.device} {r.dtype}", justify="right")
    stages = ("decode", "model", "stitch", "encode", "end_to_end")
    for st in stages:
        table.add_row(f"{st.replace('_', ' ')} fps", *[_fmt(r.fps[st], 2) for r in results],
                      style="bold" if st == "end_to_end" else None)
    for st in stages:
        table.add_row(f"{st.replace('_', ' ')} s", *[f"{r.seconds[st]:.3f}" for r in results], style="dim")
    table.add_section()
    table.add_row("peak RSS MiB", *[f"{r.memory['peak_rss_mib']:.0f}" for r in results])
    if any(r.memory.get("cuda_peak_allocated_mib") is not None for r in results):
        table.add_row("peak CUDA MiB", *["-" if r.memory.get("cuda_peak_allocated_mib") is None
                                         else f"{r.memory['cuda_peak_allocated_mib']:.0f}" for r in results])
    table.add_row("engine", *[f"chunk {r.engine['chunk']} tile {r.engine['tile']}" for r in results], style="dim")
    table.add_row("load s", *[f"{r.load_s:.2f}" for r in results], style="dim")
    console.print(table)
    v = r0.versions
    console.print(f"torch {v['torch']}, av {v['av']} (libavcodec {v.get('ffmpeg_libavcodec')}), "
                  f"{r0.host.get('torch_threads')} torch threads on {r0.host.get('cpu_count')} CPUs; "
                  f"encoder {r0.encoder['codec']} crf {r0.encoder['crf']} {r0.encoder['preset']}; "
                  f"RSS: {r0.memory['rss_method']}{', isolated' if r0.isolated else ''}", style="dim")


if __name__ == "__main__":  # the isolated speed child
    if sys.argv[1:] == ["--child"]:
        raise SystemExit(_child_main())
    raise SystemExit("usage: python -m upvid.bench --child  (internal; use `upvid bench`)")
