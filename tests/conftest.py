"""Shared test fixtures: paths to the shared real data, and small real clips made with PyAV."""

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

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def need(path: Path) -> Path:
    """Skip the test with a clear message when a piece of shared data is absent."""
    if not path.exists():
        pytest.skip(f"shared test data not found: {path} (expected ../shared/data beside the repo, "
                    "or set UPVID_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def realshort() -> Path:
    """320x240 H.264 + AAC, 36 frames, 1.2 s (imageio's clip, shipped in upvid/data/ as the
    README's sample; the same bytes as ../shared/data/video/imageio/realshort.mp4)."""
    return REPO / "upvid" / "data" / "realshort.mp4"


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


@pytest.fixture(scope="session")
def calendar_clip(tmp_path_factory) -> Path:
    """A real clip: the first 12 Vid4 calendar frames at 1/4 size (180x144), 25 fps, AAC stereo audio."""
    from upvid.io.images import encode_clip

    path = tmp_path_factory.mktemp("clips") / "calendar_lr.mp4"
    encode_clip(vid4_lr("calendar", 12), path, fps=25)
    return path
