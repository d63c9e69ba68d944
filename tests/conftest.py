"""Shared test fixtures: small real clips made with PyAV (paths to the shared data: :mod:`tests.data`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.data import REPO, vid4_lr

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
# The pipeline's tests run the models on torch (exact fixtures, fast starts); tests/test_openvino.py
# and the benchmarks ask for OpenVINO (the CLI's default on a CPU when it is installed) explicitly.
os.environ.setdefault("UPVID_BACKEND", "torch")


@pytest.fixture(scope="session")
def realshort() -> Path:
    """320x240 H.264 + AAC, 36 frames, 1.2 s (imageio's clip, shipped in upvid/data/ as the
    README's sample; the same bytes as ../shared/data/video/imageio/realshort.mp4)."""
    return REPO / "upvid" / "data" / "realshort.mp4"


@pytest.fixture(scope="session")
def calendar_clip(tmp_path_factory) -> Path:
    """A real clip: the first 12 Vid4 calendar frames at 1/4 size (180x144), 25 fps, AAC stereo audio."""
    from upvid.io.images import encode_clip

    path = tmp_path_factory.mktemp("clips") / "calendar_lr.mp4"
    encode_clip(vid4_lr("calendar", 12), path, fps=25)
    return path
