"""Deterministic random weights in an *official* key space (no reference code).

Used by the BasicVSR++ parity test and its fixture generator
(``tests/fixtures/basicvsrpp/make_fixture.py``) so the fixture's weights need not be committed.
Load it by path (``importlib``), not as a package import.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


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
