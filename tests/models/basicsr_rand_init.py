"""Deterministic random weights for parity tests of BasicSR-derived models (no reference code).

The same function is used by the tests and by the fixture generator
(``tests/fixtures/edvr/make_fixture.py``), so a fixture's weights need not be committed.
Load it by path (``importlib``), not as a package import.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn


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
