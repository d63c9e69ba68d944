"""The settings of a quality or speed run, one typed record each (what ``upvid bench`` options fill in)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from upvid.errors import UsageError


@dataclass(frozen=True)
class _Settings:
    """Engine and model settings shared by quality and speed runs (as for ``upvid IN OUT``)."""

    scale: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    chunk: int | None = None
    overlap: int | None = None
    tile: int | None = None
    tile_overlap: int | None = None
    pretrained: bool = True
    weights_dir: Path | None = None

    @classmethod
    def of(cls, options: Any = None, **settings: Any):
        """``options`` (or the defaults) with ``settings`` replaced.

        Raises:
            UsageError: a setting this record does not have.
        """
        base = options if options is not None else cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise UsageError(f"unknown {cls.__name__} setting(s): {', '.join(unknown)}")
        return replace(base, **settings) if settings else base

    def load(self, model_name: str, device: Any) -> Any:
        """Load ``model_name`` with these ``scale``/``pretrained``/``weights_dir`` onto ``device``.

        Returns:
            The :class:`upvid.models.Upscaler`.

        Raises:
            UnknownModelError, WeightsError: from :func:`upvid.models.load_model`.
        """
        from upvid.models import load_model

        return load_model(model_name, self.scale, pretrained=self.pretrained, weights_dir=self.weights_dir,
                          device=device)

    def engine_kw(self) -> dict[str, int | None]:
        """The :meth:`upvid.engine.EngineConfig.for_model` arguments (``None``: the model's record)."""
        return {"chunk": self.chunk, "overlap": self.overlap, "tile": self.tile, "tile_overlap": self.tile_overlap}


@dataclass(frozen=True)
class QualityOptions(_Settings):
    """A quality run (:func:`upvid.bench.run_quality`).

    Attributes:
        degradation: ``"BI"`` (MATLAB bicubic down) or ``"BD"`` (Gaussian blur + subsample).
        sigma: BD blur standard deviation in HR pixels (1.6: the DUF/BasicVSR protocol).
        crop_border: pixels cropped from each side before scoring.
        max_frames: only the first N frames of each sequence (quick runs; not comparable to papers).
        scale, device, dtype, chunk, overlap, tile, tile_overlap: as for ``upvid IN OUT``
            (default: the model's record; 4 for ``matlab-bicubic``); device ``cpu``, dtype ``fp32``.
        pretrained: load the checkpoint (``False``: random weights, for tests).
        weights_dir: local checkpoint folder.
    """

    device: str = "cpu"
    dtype: str = "fp32"
    degradation: str = "BI"
    sigma: float = 1.6
    crop_border: int = 0
    max_frames: int | None = None


@dataclass(frozen=True)
class SpeedOptions(_Settings):
    """A speed run (:func:`upvid.bench.run_speed`).

    Attributes:
        frames: synthetic clip length (default 32), or only the first N frames of the video.
        repeats: timed runs (the median is reported).
        warmup: untimed runs first (model warm-up, allocator, caches).
        codec, crf, preset, pix_fmt: the encoder (``upvid``'s defaults).
        backend: ``auto``, ``torch`` or ``openvino`` (:func:`upvid.engine.openvino.choose_backend`).
        scale, device, dtype, chunk, overlap, tile, tile_overlap, pretrained, weights_dir: as for ``upvid``.
    """

    frames: int | None = None
    repeats: int = 3
    warmup: int = 1
    codec: str = "libx264"
    crf: int = 18
    preset: str = "medium"
    pix_fmt: str = "yuv420p"
    backend: str = field(default_factory=lambda: os.environ.get("UPVID_BACKEND") or "auto")

    def to_json(self) -> dict[str, Any]:
        """Plain data for the isolated child (paths as strings)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["weights_dir"] = str(self.weights_dir) if self.weights_dir else None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SpeedOptions:
        """The inverse of :meth:`to_json`."""
        d = dict(d)
        d["weights_dir"] = Path(d["weights_dir"]) if d.get("weights_dir") else None
        return cls(**d)
