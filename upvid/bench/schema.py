"""The bench JSON: schema names, the dtype labels, infinite floats as strings, and the compare document."""

from __future__ import annotations

import json
import math
from typing import Any

import torch

SCHEMA = "upvid.bench.quality/1"
SPEED_SCHEMA = "upvid.bench.speed/1"
COMPARE_SCHEMA = "upvid.bench.compare/1"
DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return "inf" if x > 0 else ("-inf" if x < 0 else "nan")
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite(v) for v in x]
    return x


def compare_json(kind: str, results: list[Any], indent: int | None = 2) -> str:
    """The ``upvid.bench.compare/1`` JSON of several quality or speed results."""
    body = {"schema": COMPARE_SCHEMA, "kind": kind, "models": [r.model for r in results],
            "results": [r.to_dict() for r in results]}
    return json.dumps(finite(body), indent=indent)
