"""Model registry: a model is a name plus a small data record in ``weights.toml``.

``weights.toml`` has one table per model, ``[models.NAME]``::

    [models.basicvsrpp]
    arch = "upvid.models.basicvsrpp:BasicVSRPlusPlus"   # module:class of an nn.Module
    kwargs = { mid_channels = 64, num_blocks = 7 }       # constructor arguments
    family = "recurrent"            # "recurrent" (clip in, clip out) or "sliding-window"
    scale = 4                       # fixed upscaling factor (bicubic: any, see `scales`)
    frames = 30                     # sliding window: frames in (2N+1); recurrent: clip length
    overlap = 5                     # recurrent: frames shared by consecutive clips
    temporal_padding = "reflect"    # sliding window ends: reflect | reflection_circle | replicate
    padding_source = "..."          # the official test config and its padding value ("FILE: KEY: VALUE")
    clip_blend = "crossfade"        # recurrent clip overlaps: crossfade | split (VRT protocol) | average (RVRT protocol)
    clip_grid = 1                   # recurrent: a clip that does not end the shot ends on a multiple of this
                                    # (IconVSR: its keyframe stride, so the last frame's refill is the whole run's)
    size_multiple = 1               # H and W are reflect-padded up to a multiple of this
    input_range = 1.0               # the network wants RGB in [0, input_range]
    input_mean = 0.0                # ... minus input_mean * input_range (mmagic's DataPreprocessor mean)
    channels = "rgb"                # "rgb", or "y" for luma-only networks
    channels_last = false           # CPU: run the convs in channels_last memory format (measured faster)
    min_size = 0                    # smallest H and W the network takes (px): smaller frames/tiles are padded up
    half = true                     # fp16 inference supported (--dtype auto picks the next one)
    bfloat16 = true                 # bf16 inference supported
    openvino = true                 # --backend auto runs it on OpenVINO on a CPU (false: measured slower there)
    tile = 0                        # default spatial tile in LR pixels (0: whole frame)
    tile_overlap = 16               # default tile overlap in LR pixels
    convert = "upvid.models.basicvsrpp:convert_official"  # official -> our key names
    license = "Apache-2.0"
    paper = "..."; repo = "..."; train_data = "REDS"; degradation = "BI"
    params = 7_325_095                    # informational
    psnr = { reds4 = 32.39, vid4 = 27.79 } # published PSNR-Y (Vid4) / RGB (REDS4)
    embedded = { file = "x.fp16.safetensors", sha256 = "...", dtype = "fp16" }  # optional: a converted
                                          # copy in upvid/data/, used when the checkpoint is not local
    denoise_with = "other-model"          # optional: --denoise D loads D * this + (1 - D) * that
    denoise_default = 0.5                 #   (Real-ESRGAN's dni), D by default
    [models.basicvsrpp.weights]           # where the checkpoint comes from, see upvid.models.weights
    repo_id = "..."; filename = "..."; sha256 = "..."   # or url = "..."

Architecture contract (what ``arch`` must implement):

- ``family = "recurrent"``: ``forward(x)`` with ``x`` of shape ``(B, T, C, H, W)`` returns
  ``(B, T, C, s*H, s*W)``.
- ``family = "sliding-window"`` and ``frames = N > 1``: ``forward(x)`` with ``(B, N, C, H, W)``
  returns the centre frame ``(B, C, s*H, s*W)``.
- ``family = "sliding-window"`` and ``frames = 1`` (per-frame SR): ``forward(x)`` with
  ``(B, C, H, W)`` returns ``(B, C, s*H, s*W)``, the official single-image signature.

:class:`~upvid.models.upscaler.Upscaler` wraps any of them behind one signature, ``(B, T, C, H, W)`` RGB in
[0, 1] -> ``(B, T_out, C, s*H, s*W)``, handling the input range, luma-only networks and
size padding, so the engine knows nothing model-specific; :func:`upvid.models.load.load_model`
builds a record's network and loads its weights (:mod:`upvid.models.weights`) into one.
"""

from __future__ import annotations

import importlib
import os
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Callable, Literal

from torch import nn

from upvid.errors import UnknownModelError, UsageError

Family = Literal["recurrent", "sliding-window"]


def weights_toml_path() -> Path:
    """Locate ``weights.toml``.

    Order: ``$UPVID_WEIGHTS_TOML``; the copy shipped inside the wheel (``upvid/weights.toml``,
    a build-time include); the repository root of an editable checkout (``upvid/../weights.toml``).

    Raises:
        UsageError: ``$UPVID_WEIGHTS_TOML`` names no file.
        FileNotFoundError: if none exists.
    """
    env = os.environ.get("UPVID_WEIGHTS_TOML")
    if env and not Path(env).is_file():
        raise UsageError(f"UPVID_WEIGHTS_TOML={env}: no such file")
    candidates = [Path(env)] if env else []
    pkg = Path(__file__).resolve().parent.parent
    candidates += [pkg / "weights.toml", pkg.parent / "weights.toml"]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"weights.toml not found (looked in {', '.join(map(str, candidates))})")


@dataclass(frozen=True)
class ModelRecord:
    """One ``[models.NAME]`` table of ``weights.toml`` (see the module docstring)."""

    name: str
    arch: str
    family: Family
    scale: int
    frames: int = 1
    overlap: int = 0
    kwargs: dict[str, Any] = field(default_factory=dict)
    scales: list[int] | str | None = None
    temporal_padding: str = "reflect"
    padding_source: str = ""
    clip_blend: str = "crossfade"
    clip_grid: int = 1
    size_multiple: int = 1
    input_range: float = 1.0
    input_mean: float = 0.0
    channels: Literal["rgb", "y"] = "rgb"
    channels_last: bool = False
    min_size: int = 0
    half: bool = True
    bfloat16: bool = True
    openvino: bool = True
    tile: int = 0
    tile_overlap: int = 16
    convert: str | None = None
    weights: dict[str, Any] | None = None
    embedded: dict[str, Any] | None = None
    denoise_with: str | None = None
    denoise_default: float | None = None
    license: str = ""
    paper: str = ""
    repo: str = ""
    train_data: str = ""
    degradation: str = ""
    params: int | None = None
    psnr: dict[str, float] = field(default_factory=dict)
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def supports_scale(self, scale: int) -> bool:
        """True if the model can upscale by ``scale`` (``scales = "any"`` for interpolators)."""
        if self.scales == "any":
            return scale >= 1
        return scale in (self.scales or [self.scale])


_FIELDS = set(ModelRecord.__dataclass_fields__) - {"name", "extra"}
#: Types checked when a registry is read (a wrong one would fail later, far from the file).
_TYPES: dict[str, type | tuple[type, ...]] = {
    "arch": str, "family": str, "scale": int, "frames": int, "overlap": int, "kwargs": dict, "weights": dict,
    "embedded": dict, "convert": str, "clip_grid": int, "size_multiple": int, "tile": int, "tile_overlap": int,
    "min_size": int, "input_range": (int, float), "input_mean": (int, float), "psnr": dict, "openvino": bool, "half": bool,
    "bfloat16": bool,
}


@cache
def _load_toml(path: str) -> dict[str, ModelRecord]:
    """Parse a registry file.

    Raises:
        UsageError: the file is unreadable, not TOML, or a ``[models.NAME]`` table is not a record
            (a missing ``arch``/``family``/``scale``, a field of the wrong type), naming the file.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: not a readable weights.toml ({e})") from e
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise UsageError(f"{path}: 'models' must be a table of [models.NAME] tables")
    records: dict[str, ModelRecord] = {}
    for name, table in models.items():
        if not isinstance(table, dict):
            raise UsageError(f"{path}: [models.{name}] must be a table")
        known = {k: v for k, v in table.items() if k in _FIELDS}
        extra = {k: v for k, v in table.items() if k not in _FIELDS}
        try:
            records[name] = ModelRecord(name=name, extra=extra, **known)
        except TypeError as e:
            raise UsageError(f"{path}: [models.{name}] is not a model record ({e})") from e
        bad = [k for k, want in _TYPES.items() if k in known and not isinstance(known[k], want)]
        if bad:
            raise UsageError(f"{path}: [models.{name}] has a wrong type for {', '.join(bad)}")
    return records


def list_models() -> dict[str, ModelRecord]:
    """All model records from ``weights.toml``, by name (file order)."""
    return dict(_load_toml(str(weights_toml_path())))


def get_record(name: str) -> ModelRecord:
    """The record of model ``name``.

    Raises:
        UnknownModelError: if ``weights.toml`` has no such model.
    """
    models = list_models()
    if name not in models:
        raise UnknownModelError(f"unknown model {name!r}; available: {', '.join(models)}")
    return models[name]


def import_object(ref: str) -> Any:
    """Import ``"package.module:attr"``."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_network(record: ModelRecord, scale: int | None = None) -> nn.Module:
    """Instantiate the bare architecture of ``record`` with random (default-init) weights.

    Args:
        record: the model record.
        scale: requested scale; only models with ``scales = "any"`` receive it as a ``scale`` kwarg.

    Raises:
        UnknownModelError: if ``scale`` is not offered by the model.
    """
    scale = record.scale if scale is None else scale
    if not record.supports_scale(scale):
        raise UnknownModelError(f"model {record.name!r} upscales by {record.scale}, not {scale}")
    cls: Callable[..., nn.Module] = import_object(record.arch)
    kwargs = dict(record.kwargs)
    if record.scales == "any":
        kwargs["scale"] = scale
    return cls(**kwargs)
