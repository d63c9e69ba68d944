"""Device and precision selection."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from upvid.errors import UsageError

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(spec: str = "auto") -> torch.device:
    """``"auto"`` (CUDA if present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises:
        UsageError: CUDA asked for but absent, or an unknown spec.
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError as e:
        raise UsageError(f"unknown device {spec!r} (use auto, cpu, cuda or cuda:N)") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {spec!r} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise UsageError(f"unsupported device {spec!r} (use auto, cpu, cuda or cuda:N)")
    return dev


def resolve_dtype(spec: str, device: torch.device, *, half: bool = True, bfloat16: bool = True) -> torch.dtype:
    """``"auto"`` -> bf16 on CUDA devices that support it (else fp16), fp32 on CPU; a model that
    does not support bf16 (``bfloat16=False``) or fp16 (``half=False``) gets the next one.

    Raises:
        UsageError: unknown name, or a precision the model does not support.
    """
    if spec == "auto":
        if device.type == "cuda":
            if bfloat16 and torch.cuda.is_bf16_supported():
                return torch.bfloat16
            return torch.float16 if half else torch.float32
        return torch.float32
    if spec not in _DTYPES:
        raise UsageError(f"unknown dtype {spec!r} (use auto, fp32, fp16 or bf16)")
    dtype = _DTYPES[spec]
    if (dtype == torch.float16 and not half) or (dtype == torch.bfloat16 and not bfloat16):
        raise UsageError(f"--dtype {spec}: this model does not support it (use fp32 or auto)")
    return dtype


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Mixed precision for the model call (no-op for fp32). Weights stay fp32; flows/grids are
    computed in fp32 by the blocks themselves."""
    if dtype == torch.float32:
        with torch.inference_mode():
            yield
        return
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype):
        yield
