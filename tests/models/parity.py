"""The helper every architecture test calls (as spandrel's tests/util.py): deterministic weights
without reference code, in our key space or an official one, and the check against a fixture.

The fixture generators (``tests/fixtures/*/make_fixture.py``) import the same functions, so a
fixture's weights are reproducible from its seed and need not be committed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def numpy_weights(net: nn.Module, seed: int) -> dict[str, Tensor]:
    """A full state dict for ``net``: every parameter drawn from ``numpy.random.default_rng(seed)``.

    Parameters are visited in sorted key order. A weight of shape ``(out, in, *k)`` gets
    ``uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``fan_in = in * prod(k)`` (PyTorch's
    default conv init bound); a 1-D parameter ``<prefix>.bias`` uses the fan-in of
    ``<prefix>.weight``. Buffers (e.g. SpyNet's ``mean``/``std``) keep the network's values.
    The result depends only on the key names, shapes and seed.
    """
    rng = np.random.default_rng(seed)
    params = dict(net.named_parameters())
    sd = {k: v.detach().clone() for k, v in net.state_dict().items()}
    for key in sorted(params):
        shape = tuple(params[key].shape)
        if len(shape) > 1:
            fan_in = math.prod(shape[1:])
        else:
            w = params.get(key.rsplit(".", 1)[0] + ".weight")
            fan_in = math.prod(w.shape[1:]) if w is not None and w.ndim > 1 else shape[0]
        bound = 1.0 / math.sqrt(fan_in)
        sd[key] = torch.from_numpy(rng.uniform(-bound, bound, size=shape).astype(np.float32))
    return sd


def numpy_weights_for_shapes(shapes: dict[str, list[int]], seed: int) -> dict[str, Tensor]:
    """One tensor per key of ``shapes``, drawn from ``numpy.random.default_rng(seed)`` in sorted key order.

    A weight of shape ``(out, in, *k)`` gets ``uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with
    ``fan_in = in * prod(k)`` (PyTorch's default conv bound); a 1-D ``<prefix>.bias`` uses the
    fan-in of ``<prefix>.weight`` (a ``<prefix>.bias`` without a matching weight: its length).
    The result depends only on the key names, shapes and seed.

    Args:
        shapes: official parameter names -> shapes (buffers such as SpyNet's mean/std excluded).
        seed: numpy seed.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, Tensor] = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        if len(shape) > 1:
            fan_in = math.prod(shape[1:])
        else:
            w = shapes.get(key.rsplit(".", 1)[0] + ".weight")
            fan_in = math.prod(w[1:]) if w is not None and len(w) > 1 else shape[0]
        bound = 1.0 / math.sqrt(fan_in)
        out[key] = torch.from_numpy(rng.uniform(-bound, bound, size=shape).astype(np.float32))
    return out


def module_from_shapes(shapes: dict[str, list[int]]) -> nn.Module:
    """An empty module whose parameters have exactly these dotted names and shapes (official key layouts)."""
    root = nn.Module()
    for key, shape in shapes.items():
        *path, leaf = key.split(".")
        mod = root
        for part in path:
            if not hasattr(mod, part):
                mod.add_module(part, nn.Module())
            mod = getattr(mod, part)
        mod.register_parameter(leaf, nn.Parameter(torch.zeros(shape)))
    return root


def meta(model: str, case: str) -> dict:
    """The ``case`` entry of ``tests/fixtures/<model>/meta.json`` (config, seed, tolerance, ...)."""
    return json.loads((FIXTURES / model / "meta.json").read_text())[case]


def assert_matches(net: nn.Module, model: str, case: str, file: str | None = None) -> float:
    """Run ``net`` (weights loaded, eval mode) on the fixture's ``input`` and compare with its ``output``.

    The fixture is ``tests/fixtures/<model>/<file or case>.safetensors``; with ``output_stride`` in
    the meta, only every ``s``-th output pixel was stored. Returns the max absolute error.

    Raises:
        AssertionError: the error exceeds the case's ``tolerance``.
    """
    m = meta(model, case)
    data = load_file(str(FIXTURES / model / f"{file or case}.safetensors"))
    return assert_close(net, data, m["tolerance"], m.get("output_stride", 1))


def assert_close(net: nn.Module, data: dict[str, Tensor], tolerance: float, stride: int = 1,
                 key: str = "") -> float:
    """``net(data[key + "input"])``, every ``stride``-th output pixel, against ``data[key + "output"]``.

    Returns:
        The max absolute error.

    Raises:
        AssertionError: it exceeds ``tolerance``.
    """
    with torch.no_grad():
        y = net(data[key + "input"])
    err = (y[..., ::stride, ::stride] - data[key + "output"]).abs().max().item()
    assert err <= tolerance, f"max abs error {err} > {tolerance}"
    return err
