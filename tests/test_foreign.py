"""--model PATH: a single-image SR checkpoint that spandrel recognises runs as a per-frame model,
read without unpickling arbitrary objects."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.data import WEIGHTS, need
from tests.cli import call
from upvid.errors import UsageError, WeightsError
from upvid.io.images import read_image_folder
from upvid.models import load_model
from upvid.models.foreign import load_foreign

pytest.importorskip("spandrel", reason="spandrel not installed (pip install 'upvid[spandrel]')")


def _anime() -> Path:
    return need(WEIGHTS / "realesr-animevideov3.pth")


def test_spandrel_builds_the_same_network_as_upvid_for_a_known_checkpoint(tmp_path):
    """realesr-animevideov3.pth through spandrel (as a .pth and as a .safetensors) gives upvid's
    own realesr-animevideov3 output, with the descriptor's scale and size rule."""
    pth = _anime()
    ours = load_model("realesr-animevideov3", weights_dir=WEIGHTS)
    sd = torch.load(pth, map_location="cpu", weights_only=True)["params"]
    st = tmp_path / "anime.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(st))
    x = torch.rand(1, 1, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = ours(x)
        for path in (pth, st):
            foreign = load_model(str(path))
            assert foreign.record.scale == 4 and foreign.record.family == "sliding-window"
            assert foreign.record.arch == "spandrel:RealESRGAN Compact"
            assert (foreign(x) - want).abs().max().item() < 1e-5


def test_cli_runs_a_checkpoint_path(realshort, tmp_path):
    """`upvid IN OUT --model file.pth` end to end; --scale other than the checkpoint's is exit 5."""
    pth = _anime()
    code, _, err = call(str(realshort), str(tmp_path / "o"), "--model", str(pth), "--frames", "0:2", "-q")
    assert code == 0, err
    frames = list(read_image_folder(tmp_path / "o"))
    assert len(frames) == 2 and frames[0].shape == (960, 1280, 3)
    code, _, err = call(str(realshort), str(tmp_path / "p.mp4"), "--model", str(pth), "--scale", "2")
    assert code == 5 and "upscales by 4" in err


class Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/upvid-evil-ran"),))


def test_pickled_objects_are_refused_unexecuted(realshort, tmp_path):
    Path("/tmp/upvid-evil-ran").unlink(missing_ok=True)
    bad = tmp_path / "evil.pth"
    with open(bad, "wb") as f:
        pickle.dump({"params": Evil()}, f)
    with pytest.raises(WeightsError, match="cannot be read safely"):
        load_foreign(bad)
    assert not Path("/tmp/upvid-evil-ran").exists()
    code, _, err = call(str(realshort), str(tmp_path / "o.mp4"), "--model", str(bad))
    assert code == 6 and "cannot be read safely" in err and len(err.strip().splitlines()) == 1, err
    assert not Path("/tmp/upvid-evil-ran").exists()


def test_unknown_architectures_and_missing_files_are_one_line_errors(tmp_path):
    odd = tmp_path / "odd.safetensors"
    save_file({"foo.weight": torch.zeros(3, 3)}, str(odd))
    with pytest.raises(WeightsError, match="not an architecture spandrel knows"):
        load_foreign(odd)
    with pytest.raises(UsageError, match="no such file"):
        load_foreign(tmp_path / "missing.pth")
