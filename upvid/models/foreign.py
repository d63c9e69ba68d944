"""``--model PATH``: any single-image SR checkpoint that spandrel recognises, run per frame.

spandrel (chaiNNer-org/spandrel, MIT, PyPI ``spandrel``; the ``upvid[spandrel]`` extra) knows
the architectures of the single-image SR zoo (ESRGAN/Real-ESRGAN, SwinIR, HAT, DAT, OmniSR,
SPAN, ...) from their state dicts. upvid reads the file itself, safely (``.safetensors``, or
``.pth`` through ``torch.load(weights_only=True)``: never an arbitrary unpickle), hands the
state dict to spandrel, and wraps the network spandrel builds as a per-frame model: scale, size
rule (``multiple_of``, reflect-padded; ``minimum``) and fp16/bf16 support come from spandrel's
descriptor. Video architectures stay upvid's own (``upvid models``).
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from upvid.errors import UsageError, WeightsError
from upvid.models.registry import ModelRecord

log = logging.getLogger("upvid")

SUFFIXES = (".pth", ".safetensors")


def is_model_path(name: str) -> bool:
    """Does ``--model`` name a checkpoint file rather than a ``weights.toml`` model?"""
    return name.lower().endswith(SUFFIXES)


@dataclass(frozen=True)
class ForeignInfo:
    """What spandrel said about a checkpoint.

    Attributes:
        architecture: spandrel's name for it (``"ESRGAN"``, ``"SwinIR"``...).
        scale: upscaling factor.
        multiple_of: H and W must be multiples of this (upvid reflect-pads).
        minimum: smallest H and W in px.
        half, bfloat16: whether fp16 / bf16 inference is supported.
        sha256: the file's digest (in the resume fingerprint).
    """

    architecture: str
    scale: int
    multiple_of: int
    minimum: int
    half: bool
    bfloat16: bool
    sha256: str


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A checkpoint's tensors, read without unpickling arbitrary objects.

    Raises:
        UsageError: not a .pth / .safetensors file, or missing.
        WeightsError: unreadable, or a pickle that holds more than tensors and plain containers.
    """
    if not path.is_file():
        raise UsageError(f"--model {path}: no such file")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        with warnings.catch_warnings():  # torch's pickle-protocol chatter is not for the user
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure is one line naming the file
        text = str(e).strip()
        if "Weights only load failed" in text:
            reason = "it holds pickled objects besides tensors, which upvid never unpickles; save its state dict as .safetensors"
        else:
            reason = (text.splitlines()[0] if text else type(e).__name__)[:200]
        raise WeightsError(f"--model {path}: cannot be read safely ({reason})") from e


def load_foreign(path: Path):
    """Build the network of the checkpoint at ``path`` with spandrel.

    Returns:
        ``(network, record, info)``: an ``nn.Module`` taking ``(B, 3, H, W)`` RGB in [0, 1] and
        returning ``(B, 3, sH, sW)``, a per-frame :class:`~upvid.models.registry.ModelRecord`,
        and a :class:`ForeignInfo`.

    Raises:
        UsageError: spandrel is not installed, or the file is not a 3-channel single-image SR model.
        WeightsError: unreadable / unsafe file, or an architecture spandrel does not know.
    """
    try:
        from spandrel import ImageModelDescriptor, ModelLoader, canonicalize_state_dict
    except ImportError:
        raise UsageError("--model PATH needs spandrel: pip install 'upvid[spandrel]'") from None
    path = Path(path)
    sd = read_state_dict(path)
    try:
        desc = ModelLoader(torch.device("cpu")).load_from_state_dict(canonicalize_state_dict(sd))
    except Exception as e:  # noqa: BLE001 - spandrel's UnsupportedModelError and friends
        raise WeightsError(f"--model {path}: not an architecture spandrel knows ({type(e).__name__})") from e
    if not isinstance(desc, ImageModelDescriptor) or desc.input_channels != 3 or desc.output_channels != 3:
        raise UsageError(f"--model {path}: {desc.architecture.name} is not a 3-channel image-to-image model")
    if desc.scale < 1:
        raise UsageError(f"--model {path}: scale {desc.scale} is not an upscaler")
    req = desc.size_requirements
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    info = ForeignInfo(desc.architecture.name, int(desc.scale), int(req.multiple_of or 1), int(req.minimum or 0),
                       bool(desc.supports_half), bool(desc.supports_bfloat16), digest)
    record = ModelRecord(
        name=path.name, arch=f"spandrel:{info.architecture}", family="sliding-window", scale=info.scale, frames=1,
        size_multiple=info.multiple_of, min_size=info.minimum, half=info.half, bfloat16=info.bfloat16,
        description=f"{info.architecture} x{info.scale} from {path.name} (spandrel)", repo=str(path),
        extra={"sha256": digest},
    )
    log.info("%s: %s x%d (spandrel), sha256 %s", path.name, info.architecture, info.scale, digest)
    return desc.model.eval(), record, info
