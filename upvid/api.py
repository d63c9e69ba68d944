"""The Python API: what ``upvid IN OUT`` does, callable from a program (re-exported by :mod:`upvid`).

- :func:`upscale` runs one job, file to file (or ``"-"`` for stdin/stdout), exactly as the CLI.
- :func:`load_model` gives an :class:`~upvid.models.Upscaler` by registry name or checkpoint path.
- :func:`upscale_frames` streams ``(H, W, 3)`` RGB arrays through a model with the engine's clips,
  windows and tiles, without files.

Errors are the typed exceptions of :mod:`upvid.errors`; each carries the exit code the CLI uses.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from upvid.errors import InputError, UsageError
from upvid.job.options import JobOptions, JobResult
from upvid.models.upscaler import Upscaler

_OPTION_NAMES = {f.name for f in fields(JobOptions)}


def upscale(src: str | os.PathLike, dst: str | os.PathLike, model: str = "rlfn-x4", *,
            start: str | float | None = None, duration: str | float | None = None, frames: str | None = None,
            input_format: str | None = None, format: str | None = None,
            on_frame: Callable[[int, int], None] | None = None, **options: Any) -> JobResult:
    """Upscale the video (or image folder) ``src`` into ``dst``, keeping audio, subtitles and timestamps.

    Args:
        src: a video file, a folder of images, or ``"-"`` (a stream on stdin).
        dst: a video file (its suffix picks the container), a folder for PNG frames, or ``"-"`` (stdout).
        model: a registry name (``upvid models``) or the path of a single-image checkpoint.
        start, duration, frames: a preview: ``--start``/``--duration`` (seconds or ``[HH:]MM:SS``) or
            ``--frames A:B``.
        input_format, format: the containers of a stdin / stdout stream (``y4m``, ``nut``,
            ``matroska``, ``mpegts``).
        on_frame: progress callback ``(frames_done, total_or_0)``.
        **options: any :class:`~upvid.job.JobOptions` field: ``scale``, ``device``, ``dtype``,
            ``chunk`` (the clip length), ``tile``, ``codec``, ``crf``, ``preset``, ``overwrite``,
            ``resume``, ``scene_cuts``, ``deinterlace``, ``denoise``, ``audio_codec``, ...

    Returns:
        The :class:`JobResult` (``frames``, ``seconds``, ``size``, ``status``).

    Raises:
        UsageError: an unknown option or a bad value (exit code 2); InputError (3), OutputError (4),
        UnknownModelError (5), WeightsError (6), OutOfMemoryError (7), EncodeError (8),
        PipeClosedError (9): as for the CLI.
    """
    from upvid.io.span import parse_span
    from upvid.job import EngineFactory, GlobalError, run_job
    from upvid.job.stream import is_pipe, run_stream

    unknown = sorted(set(options) - _OPTION_NAMES)
    if unknown:
        raise UsageError(f"unknown option(s) {', '.join(unknown)}; see upvid.JobOptions")
    span = parse_span(None if start is None else str(start), None if duration is None else str(duration), frames)
    opts = JobOptions(model=model, span=span, **options)
    engines = EngineFactory(opts)
    try:
        if is_pipe(src) or is_pipe(dst):
            return run_stream(src, dst, opts, engines, input_format=input_format, output_format=format,
                              on_frame=on_frame)
        if input_format is not None or format is not None:
            raise UsageError("input_format and format are for '-' (stdin/stdout) streams")
        return run_job(Path(src), Path(dst), opts, engines, on_frame=on_frame)
    except GlobalError as g:
        raise g.error from None


def load_model(name_or_path: str | os.PathLike, *, scale: int | None = None, device: str = "auto",
               weights_dir: str | os.PathLike | None = None, pretrained: bool = True,
               denoise: float | None = None) -> Upscaler:
    """Load a model: its checkpoint is found locally, in the cache, or downloaded and verified (sha256).

    Args:
        name_or_path: a registry name (``"iart"``, ``"rlfn-x4"``, ...) or a ``.pth``/``.safetensors``
            single-image checkpoint (through spandrel).
        scale: the upscaling factor (default: the model's).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        weights_dir: a folder searched for the checkpoint first (default ``$UPVID_WEIGHTS_DIR``).
        pretrained: ``False``: random weights (tests, offline pipeline checks).
        denoise: for models with a denoise twin, their interpolation weight in [0, 1].

    Returns:
        An :class:`Upscaler`: ``(B, T, 3, H, W)`` float RGB in [0, 1] -> ``(B, T_out, 3, sH, sW)``.

    Raises:
        UnknownModelError, WeightsError, UsageError: as for the CLI.
    """
    from upvid.engine import resolve_device
    from upvid.models import load_model as _load

    return _load(str(name_or_path), scale, pretrained=pretrained, device=resolve_device(device),
                 weights_dir=Path(weights_dir) if weights_dir is not None else None, denoise=denoise)


def upscale_frames(frames: Iterable[np.ndarray], model: str | Upscaler = "rlfn-x4", *, device: str = "auto",
                   dtype: str = "auto", chunk: int | None = None, overlap: int | None = None, tile: int | None = None,
                   tile_overlap: int | None = None, scene_cuts: bool = False) -> Iterator[np.ndarray]:
    """Upscale a stream of frames in memory, one output per input, in order (memory bounded by the clip).

    Args:
        frames: ``(H, W, 3)`` RGB arrays, ``uint8`` (or ``uint16``), all the same size.
        model: an :class:`Upscaler` from :func:`load_model`, or a name to load.
        device, dtype: ``"auto"`` or as for the CLI (``dtype`` ``fp32``/``fp16``/``bf16``).
        chunk, overlap, tile, tile_overlap: the clip length / windows per call, its overlap, the
            spatial tile in LR px (default: the model's record).
        scene_cuts: detect scene cuts (PySceneDetect) so no clip or window crosses one.

    Yields:
        ``(s*H, s*W, 3)`` arrays of the input's dtype.

    Raises:
        InputError: a frame that is not ``(H, W, 3)`` uint8/uint16 RGB, or of another size than the first.
        UnknownModelError, WeightsError, UsageError: loading the model or bad engine settings.
    """
    from upvid.engine import Engine, EngineConfig, resolve_device, resolve_dtype
    from upvid.engine.shots import cut_finder

    net = model if isinstance(model, Upscaler) else load_model(model, device=device)
    dev = next(net.parameters(), None)
    dev = dev.device if dev is not None else resolve_device(device)
    dt = resolve_dtype(dtype, dev, half=net.record.half, bfloat16=net.record.bfloat16)
    cfg = EngineConfig.for_model(net, chunk=chunk, overlap=overlap, tile=tile, tile_overlap=tile_overlap, device=dev,
                                 dtype=dt)
    cuts = cut_finder("auto" if scene_cuts else "off", net.family, net.record.frames, fps=25.0)
    yield from Engine(net, cfg).run(_checked(frames), cuts)


def _checked(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    shape = None
    for k, f in enumerate(frames):
        if not isinstance(f, np.ndarray) or f.ndim != 3 or f.shape[2] != 3 or f.dtype not in (np.uint8, np.uint16):
            what = f"{getattr(f, 'shape', None)} {getattr(f, 'dtype', type(f).__name__)}"
            raise InputError(f"frame {k}: expected an (H, W, 3) uint8 or uint16 RGB array, got {what}")
        if shape is None:
            shape = f.shape
        elif f.shape != shape:
            raise InputError(f"frame {k}: {f.shape[1]}x{f.shape[0]}, but the first frame is {shape[1]}x{shape[0]}")
        yield f


__all__ = ["JobOptions", "JobResult", "Upscaler", "load_model", "upscale", "upscale_frames"]
