"""A name (or a checkpoint path) -> its record, network and weights -> an :class:`Upscaler` on a device."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from upvid.errors import UnknownModelError, UsageError, WeightsError
from upvid.models.foreign import is_model_path, load_foreign
from upvid.models.registry import ModelRecord, build_network, get_record, list_models
from upvid.models.upscaler import Upscaler
from upvid.models.weights import load_state_dict_into, resolve_state_dict


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

        if strength is None or strength == 1.0:
            load_state_dict_into(net, record, weights_dir=weights_dir)
        else:
            other = get_record(record.denoise_with)
            mixed = dni(resolve_state_dict(record, weights_dir), resolve_state_dict(other, weights_dir), strength)
            try:
                net.load_state_dict(mixed, strict=True)
            except RuntimeError as e:

                raise WeightsError(f"{record.name}: checkpoint does not match the network: "
                                   f"{' '.join(str(e).split())[:400]}") from e
    net.eval().requires_grad_(False)
    return Upscaler(net, record, scale).to(device)
