"""Where the shared real test data is (``../shared/data`` beside the repo, or ``$UPVID_SHARED_DATA``),
skipping with a clear message when it is absent, and Vid4 LR frames made from it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("UPVID_SHARED_DATA", REPO.parent / "shared" / "data"))
VID4 = SHARED / "vid4" / "GT"
VIDEOS = SHARED / "video"
WEIGHTS = SHARED / "weights"


def need(path: Path) -> Path:
    """Skip the test with a clear message when a piece of shared data is absent."""
    if not path.exists():
        pytest.skip(f"shared test data not found: {path} (expected ../shared/data beside the repo, "
                    "or set UPVID_SHARED_DATA)")
    return path


def vid4_lr(seq: str = "calendar", n: int | None = None, scale: int = 4) -> list[np.ndarray]:
    """LR frames of a Vid4 sequence, ``(H/scale, W/scale, 3)`` uint8 (antialiased bicubic)."""
    from upvid.io.images import read_image_folder

    out = []
    for i, f in enumerate(read_image_folder(need(VID4 / seq))):
        if n is not None and i >= n:
            break
        x = torch.from_numpy(f).permute(2, 0, 1)[None].float()
        y = torch.nn.functional.interpolate(x, scale_factor=1 / scale, mode="bicubic", antialias=True)
        out.append(y.round().clamp(0, 255).byte()[0].permute(1, 2, 0).numpy())
    return out
