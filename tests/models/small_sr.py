"""Helpers for the tests of the small real-checkpoint models (espcn, srvgg, rlfn, vespcn): the
real checkpoint from the shared data, Vid4 GT frames, bicubic LR/baseline, PSNR-Y."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor
from torch.nn import functional as F

from tests.data import VID4, WEIGHTS, need

def load_real(name: str, tmp_path_factory: pytest.TempPathFactory):
    """``load_model(name, weights_dir=shared weights)`` with a throw-away HF_HOME (conversion cache).

    ``load_model`` verifies the sha256, converts the .pth once and loads strictly (a missing or
    unexpected key raises ``WeightsError``); the converted key set is checked here as well.
    """
    from upvid.models.registry import get_record
    from upvid.models.load import load_model
    from upvid.models.weights import resolve_state_dict

    need(WEIGHTS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf")))
        mp.delenv("UPVID_WEIGHTS_DIR", raising=False)
        model = load_model(name, weights_dir=WEIGHTS)
        sd = resolve_state_dict(get_record(name), WEIGHTS)  # now from the converted safetensors
    assert set(sd) == set(model.net.state_dict()), "converted checkpoint keys differ from the network's"
    for k, v in model.net.state_dict().items():
        assert torch.equal(sd[k], v), k
    return model


def read_gt(seq: str, indices: list[int]) -> Tensor:
    """Vid4 GT frames ``(T, 3, H, W)`` float in [0, 1] (PyAV decode)."""
    from upvid.io.images import read_image

    folder = need(VID4 / seq)
    return torch.stack([torch.from_numpy(read_image(folder / f"{i:08d}.png")).permute(2, 0, 1).float() / 255 for i in indices])


def bi_lr(hr: Tensor, scale: int = 4) -> Tensor:
    """Antialiased bicubic x1/scale (torch), quantised to 8 bits: ``(T, 3, H, W)`` -> ``(T, 3, H/s, W/s)``."""
    lr = F.interpolate(hr * 255, scale_factor=1 / scale, mode="bicubic", antialias=True)
    return lr.round().clamp(0, 255) / 255


def bicubic_up(lr: Tensor, scale: int = 4) -> Tensor:
    """Plain bicubic upscaling (``align_corners=False``), the baseline: ``(T, 3, h, w)`` -> ``(T, 3, sh, sw)``."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)


def psnr_y(a: Tensor, b: Tensor, crop: int = 8) -> float:
    """PSNR-Y (BT.601, 8-bit rounding, ``upvid.bench.metrics``) of ``(3, H, W)`` frames in [0, 1]."""
    from upvid.bench.metrics import psnr_y as _psnr_y

    def hwc(t: Tensor) -> np.ndarray:
        return t.clamp(0, 1).permute(1, 2, 0).numpy()

    return _psnr_y(hwc(a), hwc(b), crop_border=crop)
