"""`upvid explain` (LAM, Gu and Dong, CVPR 2021): attribution over the LR frames of real models on
a real clip. Zero where a model cannot look, completeness along the blur path, the figure and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.cli import call
from upvid.explain.lam import _filter, blur_path, diffusion_index, gaussian_kernel, gini, local_attribution
from upvid.explain.target import frame_function, read_span, window_in_span
from upvid.models import load_model

REALSHORT = Path(__file__).resolve().parents[1] / "upvid" / "data" / "realshort.mp4"


@pytest.fixture(scope="module")
def span7():
    """7 LR frames (a 32x32 crop of the real clip) as (T, 3, H, W) in [0, 1], the explained frame at 3."""
    frames, first, target = read_span(REALSHORT, 3, 7)
    assert (first, target, frames.shape[0]) == (0, 3, 7)
    crop = np.ascontiguousarray(frames[:, 40:72, 60:92])
    return torch.from_numpy(crop).permute(0, 3, 1, 2).float() / 255


def _random(name: str):
    torch.manual_seed(0)
    return load_model(name, pretrained=False)


def test_per_frame_model_uses_exactly_its_own_frame(span7):
    net = load_model("rlfn-x4")  # the shipped real weights
    a = local_attribution(frame_function(net, 3, 7), span7, (56, 56, 16), steps=8)
    others = [i for i in range(7) if i != 3]
    assert all(a.frame_share[i] == 0.0 for i in others) and a.frame_share[3] == 1.0
    assert torch.count_nonzero(a.attribution[others]) == 0 and torch.count_nonzero(a.attribution[3]) > 0


@pytest.mark.parametrize("name", ["edvr-m", "tdan"])
@pytest.mark.slow  # VSR networks, forward and backward
def test_sliding_window_attribution_is_zero_outside_its_window(span7, name):
    """5-frame windows (EDVR-M: PCD + TSA; TDAN: deformable alignment), random weights, a 24x24 crop."""
    span7 = span7[..., 4:28, 4:28]
    net = _random(name)
    assert window_in_span(net, 3, 7) == [1, 2, 3, 4, 5]
    a = local_attribution(frame_function(net, 3, 7), span7, (40, 40, 16), steps=2)
    assert a.frame_share[0] == a.frame_share[6] == 0.0
    assert torch.count_nonzero(a.attribution[[0, 6]]) == 0
    assert all(a.frame_share[i] > 0 for i in range(1, 6)), a.frame_share
    # at the span's start the window is padded as the engine pads (EDVR: BasicSR's reflection_circle)
    padded = {"edvr-m": [4, 3, 0, 1, 2], "tdan": [2, 1, 0, 1, 2]}[name]
    assert window_in_span(net, 0, 7) == padded
    a0 = local_attribution(frame_function(net, 0, 7), span7, (40, 40, 16), steps=1)
    assert all((a0.frame_share[i] > 0) == (i in padded) for i in range(7)), a0.frame_share


@pytest.mark.slow  # VSR networks, forward and backward
def test_bidirectional_recurrent_model_looks_both_ways(span7):
    net = _random("basicvsr")
    a = local_attribution(frame_function(net, 3, 7), span7[..., 4:28, 4:28], (40, 40, 16), steps=2)
    assert a.frame_share[0] > 0 and a.frame_share[6] > 0  # forward and backward propagation
    assert max(a.frame_share) == a.frame_share[3]
    assert sum(a.frame_share) == pytest.approx(1.0)


def test_completeness_along_the_blur_path():
    """The attributions sum to D(x) - D(blurred x) up to the Riemann sum's error (LAM's right sum,
    first order): at 100 steps within the error estimated from 50 vs 100 steps, and on a textured
    patch within 5 % of the change."""
    frames, _, _ = read_span(REALSHORT, 3, 7)
    lr = torch.from_numpy(np.ascontiguousarray(frames[:, 60:92, 80:112])).permute(0, 3, 1, 2).float() / 255
    net = load_model("rlfn-x4")
    fn = frame_function(net, 3, 7)
    a50 = local_attribution(fn, lr, (56, 56, 16), steps=50)
    a100 = local_attribution(fn, lr, (56, 56, 16), steps=100)
    change = a100.objective - a100.baseline_objective
    assert change > 1.0 and a50.objective == pytest.approx(a100.objective)
    estimate = abs(a100.attribution_sum - a50.attribution_sum)  # ~ the error at 100 steps for a first-order rule
    assert a100.completeness_error <= 1.5 * estimate
    assert a50.completeness_error < 0.05 * change and a100.completeness_error < 0.6 * a50.completeness_error


def test_blur_path_and_gini():
    lr = torch.rand(2, 3, 12, 12, dtype=torch.float64)
    images, deriv = blur_path(lr, sigma=1.2, steps=4, kernel=9)
    assert images.shape == deriv.shape == (4, 2, 3, 12, 12)
    assert torch.allclose(images[-1], lr, atol=1e-12)  # sigma 0: the input itself
    k = gaussian_kernel(9, 1.2)
    assert k.sum().item() == pytest.approx(1.0) and k[4, 4] == k.max()
    baseline = _filter(lr, gaussian_kernel(9, 1.2))
    assert torch.allclose(deriv.sum(0) / 4, lr - baseline, atol=1e-12)  # the path's derivative telescopes
    assert gini(np.ones(100)) == pytest.approx(0.0, abs=1e-9)
    one = np.zeros(100)
    one[7] = 1.0
    assert gini(one) == pytest.approx(0.99, abs=1e-4) and diffusion_index(one) == pytest.approx(1.0, abs=0.01)


def test_cli_writes_figure_and_json(tmp_path):
    fig = tmp_path / "lam.png"
    rc, out, err = call("explain", str(REALSHORT), str(fig), "--model", "vespcn-x4-bd", "--random-weights", "--steps", "4",
                        "--crop", "32", "--quiet")
    assert rc == 0, err
    result = json.loads(out)
    assert json.loads(fig.with_suffix(".json").read_text()) == result
    assert result["frame"] == 3 and result["span"] == [0, 6] and len(result["frame_share"]) == 7
    shares = {d["frame"]: d["share"] for d in result["frame_share"]}
    assert shares[0] == shares[1] == shares[5] == shares[6] == 0.0 and shares[3] > 0  # a 3-frame window
    import av

    with av.open(str(fig)) as c:
        img = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert img.shape == (128, 8 * 128 + 7 * 4, 3)  # 7 LR panels + the HR output, x4 zoom, 4-px gaps
    assert (img == [0, 220, 0]).all(axis=-1).any()  # the patch outline
    rc, _, err = call("explain", str(REALSHORT), str(fig), "--model", "vespcn-x4-bd", "--random-weights")
    assert rc == 4 and "exists" in err and len(err.strip().splitlines()) == 1
    rc, _, err = call("explain", str(REALSHORT), str(fig), "--model", "vespcn-x4-bd", "--random-weights", "--overwrite",
                      "--patch", "5000,10")
    assert rc == 2 and "not inside" in err
