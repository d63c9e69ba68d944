"""The OpenVINO backend: the engine's model calls run as OpenVINO-compiled networks on the CPU.

Each distinct input shape the engine feeds (the clip/window/tile shapes are fixed, so a job has
one to three) is converted once from the PyTorch :class:`~upvid.models.upscaler.Upscaler` with
OpenVINO's PyTorch frontend (``openvino.convert_model``, traced at that shape: a recurrent
clip's loop is unrolled), compiled for the CPU with an inference precision hint (``bf16`` where
the CPU has it, AVX-512 BF16 or AMX; ``f32`` otherwise) and cached on disk: the converted IR
under ``$HF_HOME/upvid/openvino/`` keyed by model, weights, shape, precision and OpenVINO
version, and the compiled blob in OpenVINO's own model cache beside it.

OpenVINO is the optional ``upvid[openvino]`` extra, imported only here. A network that does not
convert falls back to torch with one warning (:class:`OpenVinoModel` keeps working).
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from upvid.models.upscaler import Upscaler

log = logging.getLogger("upvid")

#: ``--dtype`` -> OpenVINO inference precision hint.
PRECISIONS = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}


def unavailable() -> str | None:
    """Why the OpenVINO backend cannot run here (``None``: it can)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "OpenVINO is not installed (pip install 'upvid[openvino]')"
    return None


def unsupported(model: Upscaler) -> str | None:
    """Why ``model`` cannot run on OpenVINO (``None``: it can be tried).

    A network told its clip's position in the video (IconVSR's keyframe grid) changes its graph
    from clip to clip, which a graph traced at one shape cannot follow.
    """
    if getattr(model.net, "set_clip_position", None) is not None:
        return f"{model.record.name} changes its graph with the clip's position in the video"
    return None


def cpu_precisions() -> set[str]:
    """Inference precisions the CPU plugin offers here (``{"f32", "bf16", ...}``)."""
    import openvino as ov

    caps = set(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    return {"f32"} | {p for p, cap in (("bf16", "BF16"), ("f16", "FP16")) if cap in caps}


def choose_precision(dtype: torch.dtype, explicit: bool) -> tuple[str, str]:
    """``(precision, reason)`` for the CPU plugin.

    Args:
        dtype: the job's compute dtype (``--dtype``).
        explicit: ``--dtype`` was given (not ``auto``): keep its meaning, or say why not.
    """
    have = cpu_precisions()
    if not explicit:
        return ("bf16", "bf16: the CPU has BF16") if "bf16" in have else ("f32", "f32: the CPU has no BF16")
    want = PRECISIONS.get(dtype, "f32")
    if want in have:
        return want, f"{want} (--dtype)"
    return "f32", f"f32: the CPU has no {want.upper()}"


def choose_backend(spec: str, model: Upscaler, device: torch.device, dtype: torch.dtype, *,
                   dtype_explicit: bool = False, compile: bool = False) -> tuple[str, str, str]:
    """``(backend, precision, reason)`` for ``--backend spec``.

    ``auto`` picks OpenVINO on the CPU when it is installed and the model (per-frame or sliding
    window) can be converted, torch otherwise; recurrent models go to OpenVINO when asked for
    (``openvino``). The reason says why (the job's summary and ``upvid bench`` JSON carry it).

    Args:
        spec: ``auto``, ``torch`` or ``openvino``.
        model: the loaded network.
        device, dtype: the job's device and compute dtype.
        dtype_explicit: ``--dtype`` was given (OpenVINO then keeps its meaning).
        compile: ``--compile`` was asked for (a torch feature: torch then).

    Raises:
        UsageError: an unknown backend, or ``openvino`` where it cannot run (not installed, not the CPU).
    """
    from upvid.errors import UsageError

    if spec not in ("auto", "torch", "openvino"):
        raise UsageError(f"--backend must be auto, torch or openvino, got {spec!r}")
    if spec == "torch":
        return "torch", "", "--backend torch"
    if device.type != "cpu":
        if spec == "openvino":
            raise UsageError(f"--backend openvino runs on the CPU, not {device} (add --device cpu)")
        return "torch", "", f"torch on {device.type}"
    missing = unavailable()
    if missing is not None and spec == "openvino":
        raise UsageError(f"--backend openvino: {missing}")
    why = missing or unsupported(model) or ("--compile is a torch feature" if compile else None)
    if why is None and spec == "auto" and not model.record.openvino:
        why = f"{model.record.name} runs faster on torch here (its record: openvino = false)"
    if why is None and spec == "auto" and model.family == "recurrent":
        # its clip is unrolled into one graph: minutes and GBs to convert (once per clip shape), and the
        # speedup ranges from none (BasicVSR) to 18x (BasicVSR++): worth asking for, not a default
        why = "recurrent: OpenVINO unrolls its clip (slow to convert once); ask with --backend openvino"
    if why is not None:
        if spec == "openvino":
            log.warning("--backend openvino: %s; running on torch", why)
        return "torch", "", why
    precision, reason = choose_precision(dtype, explicit=dtype_explicit)
    if precision == "bf16" and not model.record.bfloat16:
        precision, reason = "f32", "f32: the model does not run in bf16"
    return "openvino", precision, reason


def _weights_digest(model: Upscaler) -> str:
    h = hashlib.sha256(model.record.name.encode())
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """``$HF_HOME/upvid/openvino`` (converted IR and OpenVINO's compiled-model cache)."""
    from upvid.models.weights import converted_dir

    return converted_dir().parent / "openvino"


class OpenVinoModel:
    """``model`` as an OpenVINO-compiled callable with the same signature.

    Args:
        model: the network (on the CPU, eval mode).
        precision: ``"f32"``, ``"bf16"`` or ``"f16"``.
        threads: CPU threads for inference (default: torch's intra-op thread count).

    Call it with ``(B, T, 3, H, W)`` float32 RGB: returns ``(B, T_out, 3, sH, sW)`` float32, as
    :meth:`Upscaler.forward` does. A recurrent network is converted for its first clip length;
    a later clip of another length (the video's last, shorter one) runs on torch.
    """

    def __init__(self, model: Upscaler, precision: str, threads: int | None = None) -> None:
        import openvino as ov

        self.model = model
        self.precision = precision
        self.threads = threads or torch.get_num_threads()
        self.core = ov.Core()
        self.version = ov.__version__
        self._compiled: dict[tuple[int, ...], object] = {}
        self._digest: str | None = None
        #: Set when conversion failed: the model then runs on torch (the reason is logged once).
        self.fallback: str | None = None

    def _key(self, shape: tuple[int, ...]) -> str:
        if self._digest is None:
            self._digest = _weights_digest(self.model)
        body = f"{self.model.record.name}|{self._digest}|{self.model.scale}|{shape}|{self.version}|v1"
        return hashlib.sha256(body.encode()).hexdigest()[:24]

    def _compile(self, x: Tensor):
        import openvino as ov

        shape = tuple(x.shape)
        folder = cache_dir()
        xml = folder / f"{self.model.record.name}-{self._key(shape)}.xml"
        if not xml.is_file():
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent Python code (fixed shapes here)
                ov_model = ov.convert_model(self.model, example_input=x)
            try:  # the IR is kept for the next run; a cache that cannot be written only costs time
                folder.mkdir(parents=True, exist_ok=True)
                tmp = xml.with_name(f".{os.getpid()}-{xml.name}")
                ov.save_model(ov_model, str(tmp), compress_to_fp16=False)
                os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
                os.replace(tmp, xml)
            except (OSError, RuntimeError) as e:
                log.debug("cannot cache the OpenVINO IR in %s: %s", folder, e)
        # Every run compiles the IR as read back from disk, so a resumed job computes what the
        # first run did (an in-memory model compiles to a graph rounded differently, ~1e-6).
        ov_model = self.core.read_model(str(xml)) if xml.is_file() else ov_model
        config = {"INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": self.threads}
        try:
            folder.mkdir(parents=True, exist_ok=True)
            config["CACHE_DIR"] = str(folder / "blobs")
        except OSError:
            pass
        compiled = self.core.compile_model(ov_model, "CPU", config)
        self._compiled[shape] = compiled
        return compiled

    def __call__(self, x: Tensor) -> Tensor:
        if self.fallback is not None:
            return self.model(x)
        shape = tuple(x.shape)
        compiled = self._compiled.get(shape)
        if compiled is None and self.model.family == "recurrent" and any(k[1] != shape[1] for k in self._compiled):
            # a video's last, shorter clip: unrolling another clip length costs as much as the first
            # conversion, for a few frames; torch runs it
            with torch.inference_mode():
                return self.model(x)
        if compiled is None:
            try:
                compiled = self._compile(x)
            except Exception as e:  # noqa: BLE001 - any frontend/plugin failure: run on torch instead
                self.fallback = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                log.warning("%s: OpenVINO cannot run it (%s); running on torch", self.model.record.name, self.fallback)
                return self.model(x)
        out = compiled(np.ascontiguousarray(x.detach().float().cpu().numpy()))[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))
