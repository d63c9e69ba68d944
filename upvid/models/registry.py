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
    size_multiple = 1               # H and W are reflect-padded up to a multiple of this
    input_range = 1.0               # the network wants RGB in [0, input_range]
    channels = "rgb"                # "rgb", or "y" for luma-only networks
    channels_last = false           # CPU: run the convs in channels_last memory format (measured faster)
    min_size = 0                    # smallest H and W the network takes (px)
    half = true                     # fp16 inference supported (--dtype auto picks the next one)
    bfloat16 = true                 # bf16 inference supported
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

:class:`Upscaler` wraps any of them behind one signature, ``(B, T, C, H, W)`` RGB in
[0, 1] -> ``(B, T_out, C, s*H, s*W)``, handling the input range, luma-only networks and
size padding, so the engine knows nothing model-specific.
"""

from __future__ import annotations

import importlib
import os
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from upvid.errors import ModelInputError, UnknownModelError, UsageError

Family = Literal["recurrent", "sliding-window"]


def weights_toml_path() -> Path:
    """Locate ``weights.toml``.

    Order: ``$UPVID_WEIGHTS_TOML``; the copy shipped inside the wheel (``upvid/weights.toml``,
    a build-time include); the repository root of an editable checkout (``upvid/../weights.toml``).

    Raises:
        FileNotFoundError: if none exists.
    """
    env = os.environ.get("UPVID_WEIGHTS_TOML")
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
    size_multiple: int = 1
    input_range: float = 1.0
    channels: Literal["rgb", "y"] = "rgb"
    channels_last: bool = False
    min_size: int = 0
    half: bool = True
    bfloat16: bool = True
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


@cache
def _load_toml(path: str) -> dict[str, ModelRecord]:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    records: dict[str, ModelRecord] = {}
    for name, table in data.get("models", {}).items():
        known = {k: v for k, v in table.items() if k in _FIELDS}
        extra = {k: v for k, v in table.items() if k not in _FIELDS}
        records[name] = ModelRecord(name=name, extra=extra, **known)
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


_BT601 = torch.tensor([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0


def rgb_to_ycbcr(x: Tensor) -> Tensor:
    """ITU-R BT.601 studio-range RGB -> YCbCr, MATLAB ``rgb2ycbcr`` convention.

    Args:
        x: ``(..., 3, H, W)`` RGB in [0, 1].

    Returns:
        ``(..., 3, H, W)`` YCbCr, Y in [16/255, 235/255], Cb/Cr in [16/255, 240/255].
    """
    m = _BT601.to(device=x.device, dtype=x.dtype)
    offset = torch.tensor([16.0, 128.0, 128.0], device=x.device, dtype=x.dtype).view(3, 1, 1) / 255.0
    return torch.einsum("ij,...jhw->...ihw", m, x) + offset


def ycbcr_to_rgb(x: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr`. ``(..., 3, H, W)`` -> RGB (unclamped, about [0, 1])."""
    m = torch.linalg.inv(_BT601.double()).to(device=x.device, dtype=x.dtype)
    offset = torch.tensor([16.0, 128.0, 128.0], device=x.device, dtype=x.dtype).view(3, 1, 1) / 255.0
    return torch.einsum("ij,...jhw->...ihw", m, x - offset)


class Upscaler(nn.Module):
    """One signature for every architecture: ``(B, T, 3, H, W)`` RGB [0, 1] -> ``(B, T_out, 3, sH, sW)``.

    ``T_out`` is ``T`` for recurrent models and 1 (the centre frame) for sliding-window ones,
    where ``T`` must equal ``record.frames``. Inputs are reflect-padded to ``size_multiple``
    and the output cropped back; luma-only networks get Y (BT.601) and their chroma is
    bicubic-upsampled; networks that want [0, 255] get it.

    Args:
        net: the bare architecture (see the registry contract).
        record: its record.
        scale: the effective scale (``record.scale`` unless the model takes any scale).
    """

    def __init__(self, net: nn.Module, record: ModelRecord, scale: int | None = None) -> None:
        super().__init__()
        self.net = net
        self.record = record
        self.scale = record.scale if scale is None else scale

    @property
    def family(self) -> Family:
        return self.record.family

    def set_clip_position(self, start: int, is_last: bool) -> None:
        """Tell a recurrent network where the next clip lies in the video: its first frame's index
        ``start`` and whether it ends the video. Networks whose schedule depends on absolute frame
        positions (IconVSR's keyframe grid) define ``set_clip_position``; for the rest it is a no-op."""
        hook = getattr(self.net, "set_clip_position", None)
        if hook is not None:
            hook(start, is_last)

    def forward(self, x: Tensor) -> Tensor:
        """Upscale.

        Args:
            x: ``(B, T, 3, H, W)`` float RGB in [0, 1].

        Returns:
            ``(B, T_out, 3, s*H, s*W)`` float RGB, about [0, 1] (not clamped).

        Raises:
            ModelInputError: wrong rank, channel count, or a sliding window of the wrong length.
        """
        if x.ndim != 5 or x.shape[2] != 3:
            raise ModelInputError(f"{self.record.name}: expected (B, T, 3, H, W), got {tuple(x.shape)}")
        b, t, _, h, w = x.shape
        rec = self.record
        if rec.min_size and min(h, w) < rec.min_size:
            raise ModelInputError(f"{rec.name}: frames (or tiles) must be at least {rec.min_size} px, got {h}x{w}")
        if rec.family == "sliding-window" and t != rec.frames:
            raise ModelInputError(f"{rec.name}: sliding window of {rec.frames} frames, got {t}")
        m = rec.size_multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            if ph >= h or pw >= w:  # reflect needs pad < size
                x = F.pad(x.flatten(0, 1), (0, pw, 0, ph), mode="replicate").unflatten(0, (b, t))
            else:
                x = F.pad(x.flatten(0, 1), (0, pw, 0, ph), mode="reflect").unflatten(0, (b, t))
        chroma = None
        if rec.channels == "y":
            ycc = rgb_to_ycbcr(x)
            chroma = ycc[:, :, 1:]
            x = ycc[:, :, :1]
        if rec.input_range != 1.0:
            x = x * rec.input_range
        if rec.family == "recurrent":
            y = self.net(x)
        elif rec.frames == 1:
            y = self.net(x[:, 0]).unsqueeze(1)
        else:
            y = self.net(x).unsqueeze(1)
        if rec.input_range != 1.0:
            y = y / rec.input_range
        if chroma is not None:
            centre = chroma if rec.family == "recurrent" else chroma[:, rec.frames // 2 : rec.frames // 2 + 1]
            up = F.interpolate(centre.flatten(0, 1), scale_factor=self.scale, mode="bicubic", align_corners=False)
            y = ycbcr_to_rgb(torch.cat([y, up.unflatten(0, centre.shape[:2])], dim=2))
        s = self.scale
        return y[..., : h * s, : w * s]


def denoise_strength(record: ModelRecord, denoise: float | None) -> float | None:
    """The ``--denoise`` strength a job of ``record`` uses (``None``: the model has no twin).

    Raises:
        UsageError: ``denoise`` for a model without a ``denoise_with`` twin, or outside [0, 1].
    """
    if record.denoise_with is None:
        if denoise is not None:
            twins = [n for n, r in list_models().items() if r.denoise_with]
            raise UsageError(f"--denoise: {record.name} has no denoise twin (models that have one: {', '.join(twins)})")
        return None
    strength = record.denoise_default if denoise is None else denoise
    if strength is None or not 0.0 <= strength <= 1.0:
        raise UsageError(f"--denoise must be in [0, 1], got {denoise}")
    return float(strength)


def dni(a: dict[str, Tensor], b: dict[str, Tensor], strength: float) -> dict[str, Tensor]:
    """Deep network interpolation (Wang et al., CVPR 2019), as Real-ESRGAN's ``RealESRGANer.dni``:
    ``strength * a + (1 - strength) * b`` for every tensor.

    Raises:
        WeightsError: the two state dicts do not have the same keys and shapes.
    """
    from upvid.errors import WeightsError

    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise WeightsError("--denoise: the two checkpoints do not have the same tensors")
    return {k: strength * a[k] + (1.0 - strength) * b[k] if a[k].is_floating_point() else a[k] for k in a}


def load_model(
    name: str,
    scale: int | None = None,
    *,
    pretrained: bool = True,
    weights_dir: Path | None = None,
    device: torch.device | str = "cpu",
    denoise: float | None = None,
) -> Upscaler:
    """Build model ``name``, load its checkpoint strictly, and wrap it in an :class:`Upscaler`.

    Args:
        name: a ``weights.toml`` model name, or the path of a single-image SR checkpoint
            (``.pth``/``.safetensors``) that spandrel recognises (:mod:`upvid.models.foreign`).
        scale: requested scale (default: the model's).
        pretrained: load the checkpoint (``False``: random weights, for tests).
        weights_dir: a local folder searched for the checkpoint file before the Hub
            (default ``$UPVID_WEIGHTS_DIR``).
        device: target device.
        denoise: for a model with a ``denoise_with`` twin, the weight of its own weights in
            their interpolation (Real-ESRGAN's ``--denoise_strength``, 0..1; default the
            record's ``denoise_default``).

    Raises:
        UsageError: ``denoise`` given for a model without a twin, or outside [0, 1].
        UnknownModelError: unknown model or unsupported scale.
        WeightsError: weights unavailable, failing sha256, or not matching the network strictly.
    """
    from upvid.models.foreign import is_model_path, load_foreign

    if is_model_path(name):  # a single-image checkpoint file, through spandrel
        net, record, _ = load_foreign(Path(name))
        if scale is not None and scale != record.scale:
            raise UnknownModelError(f"{name}: {record.arch} upscales by {record.scale}, not {scale}")
        if denoise is not None:
            denoise_strength(record, denoise)  # raises: no twin
        net.requires_grad_(False)
        return Upscaler(net, record, record.scale).to(device)
    record = get_record(name)
    scale = record.scale if scale is None else scale
    if scale < 1:
        raise UsageError(f"scale must be >= 1, got {scale}")
    strength = denoise_strength(record, denoise)
    net = build_network(record, scale)
    if pretrained and record.weights:
        from upvid.models.weights import load_state_dict_into, resolve_state_dict

        if strength is None or strength == 1.0:
            load_state_dict_into(net, record, weights_dir=weights_dir)
        else:
            other = get_record(record.denoise_with)
            mixed = dni(resolve_state_dict(record, weights_dir), resolve_state_dict(other, weights_dir), strength)
            try:
                net.load_state_dict(mixed, strict=True)
            except RuntimeError as e:
                from upvid.errors import WeightsError

                raise WeightsError(f"{record.name}: checkpoint does not match the network: "
                                   f"{' '.join(str(e).split())[:400]}") from e
    net.eval().requires_grad_(False)
    return Upscaler(net, record, scale).to(device)
