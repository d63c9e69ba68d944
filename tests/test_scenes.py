"""Scene cuts: no recurrent state, sliding window or clip cross-fade crosses a cut.

Exactness: in a concatenation A+B with a hard cut, the output frames of B equal those of B
upscaled alone, bit for bit (fp32, CPU), for a recurrent and a sliding-window model, also when
the cut falls inside what would have been a clip overlap; and the frames of A equal A alone.
Real frames: Vid4 calendar (A) and city (B), LR crops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data import vid4_lr
from tests.cli import at_frame, call
from upvid.engine import Engine, EngineConfig
from upvid.engine.shots import DetectedCuts, ListedCuts, ResumedCuts, read_cut_file, split_shots
from upvid.errors import UsageError
from upvid.io.images import read_image_folder, write_image
from upvid.models import load_model


def _shots(n_a: int = 16, n_b: int = 8, size: int = 32) -> tuple[list[np.ndarray], list[np.ndarray]]:
    a = [f[40:40 + size, 60:60 + size].copy() for f in vid4_lr("calendar", n_a)]
    b = [f[40:40 + size, 60:60 + size].copy() for f in vid4_lr("city", n_b)]
    return a, b


def _run(model, frames, cuts=None, **cfg) -> list[np.ndarray]:
    engine = Engine(model, EngineConfig.for_model(model, **cfg))
    return list(engine.run(iter(frames), cuts))


def _model(name: str):
    torch.manual_seed(0)
    return load_model(name, pretrained=False)


@pytest.mark.parametrize("name,cfg", [
    ("basicvsr", {"chunk": 6, "overlap": 2}),   # uncut clips [0,6) [3,9): the cut at 5 is inside their overlap
    ("vespcn-x4-bd", {}),                       # 3-frame windows, reflect padding at the cut
])
def test_output_of_each_shot_equals_the_shot_alone(name, cfg):
    a, b = _shots(5, 4)
    model = _model(name)
    with torch.no_grad():
        whole = _run(model, a + b, ListedCuts([5]), **cfg)
        alone_a, alone_b = _run(model, a, **cfg), _run(model, b, **cfg)
        uncut = _run(model, a + b, None, **cfg)
    assert len(whole) == 9
    for got, want in zip(whole, alone_a + alone_b):
        assert np.array_equal(got, want)
    # without the cut, frames next to it see the other shot (VESPCN: A's last frame reads B's first)
    assert not all(np.array_equal(g, w) for g, w in zip(uncut, alone_a + alone_b))


def test_content_detector_finds_the_real_cut_and_nothing_else():
    a, b = _shots(20, 18, size=96)
    det = DetectedCuts("content", fps=25)
    assert det.lag >= 15  # PySceneDetect's flash filter may confirm a cut up to min_scene_len frames late
    for i, f in enumerate(a + b):
        det.feed(i, f)
    assert det.found == [20]


def test_split_shots_holds_back_only_the_detector_lag():
    """Shots come out in order with the cut's frame first in its shot, and the reader never runs
    more than ``lag + 1`` frames ahead of what was handed out."""
    a, b = _shots(20, 18, size=96)
    det = DetectedCuts("content", fps=25)
    read = []

    def frames():
        for i, f in enumerate(a + b):
            read.append(i)
            yield f

    shots, ahead = [], 0
    for shot in split_shots(frames(), det):
        got = []
        for f in shot:
            got.append(f)
            ahead = max(ahead, len(read) - (sum(map(len, shots)) + len(got)))
        shots.append(got)
    assert [len(s) for s in shots] == [20, 18]
    assert np.array_equal(shots[1][0], b[0])
    assert ahead <= det.lag + 1


def test_resumed_cuts_keep_the_journal_cuts_and_detect_after():
    inner = ListedCuts([5, 30])
    r = ResumedCuts([12], upto=20, inner=inner)
    found = [c for i in range(10, 40) for c in r.feed(i, None)]
    assert found == [12, 30]  # 5 is before the warm-up window, 12 comes from the journal


def test_cut_files_frames_times_and_pyscenedetect_csv(tmp_path):
    f = tmp_path / "cuts.txt"
    f.write_text("# cuts\n120\n00:00:02.500\n62.5s\n1:02.5\n\n")
    assert read_cut_file(f) == ([120], [2.5, 62.5, 62.5])
    csv = tmp_path / "scenes.csv"
    csv.write_text("Timecode List:,00:00:01.000\nScene Number,Start Frame,Start Timecode,End Frame\n"
                   "1,1,00:00:00.000,25\n2,26,00:00:01.000,60\n3,61,00:00:02.400,80\n")
    assert read_cut_file(csv) == ([25, 60], [])
    bad = tmp_path / "bad.txt"
    bad.write_text("12\nabc\n")
    with pytest.raises(UsageError, match="line 2"):
        read_cut_file(bad)
    times = ListedCuts(times=[0.1], time_of=lambda i: i * 0.04)
    assert [c for i in range(6) for c in times.feed(i, None)] == [3]  # first frame at or after 0.1 s


def _folder(path: Path, frames) -> Path:
    path.mkdir()
    for i, f in enumerate(frames):
        write_image(f, path / f"{i:08d}.png")
    return path


@pytest.mark.slow
def test_cli_scene_cuts_auto_file_and_resume_at_a_cut(tmp_path, monkeypatch):
    """Through the CLI (PNG folders in and out, so nothing lossy), basicvsr with clips of 6/2:
    with the default --scene-cuts auto, B's frames equal B upscaled alone, and a cut file gives
    the same as detection. The journal's segments end at the cut (10 + 6 frames with
    --segment-frames 10), so a job interrupted after it resumes at the cut with no warm-up and
    gives exactly the uninterrupted output. A missing cut file is exit 2."""
    import json

    import upvid.job.run as job

    a, b = _shots(16, 8)
    ab = _folder(tmp_path / "ab", a + b)
    alone = _folder(tmp_path / "b", b)
    common = ["-m", "basicvsr", "--random-weights", "--chunk", "6", "--overlap", "2", "-q", "--segment-frames", "10"]
    with monkeypatch.context() as m:
        at_frame(m, 18, sink="image")
        assert call(str(ab), str(tmp_path / "auto"), *common)[0] == 130
    journal = json.loads((tmp_path / ".auto.upvid-partial" / "journal.json").read_text())
    assert [s["frames"] for s in journal["segments"]] == [10, 6] and journal["cuts"] == [16]
    firsts = []
    real_run = job.run_pipeline
    monkeypatch.setattr(job, "run_pipeline", lambda *a, **k: (firsts.append(k["first"]), real_run(*a, **k))[1])
    code, out, err = call(str(ab), str(tmp_path / "auto"), *common, "--resume", "--json")
    assert code == 0 and json.loads(out)["results"][0]["resumed_from"] == 16, err
    assert firsts == [16]  # no warm-up: the shot starts there
    assert call(str(alone), str(tmp_path / "alone"), *common)[0] == 0
    (tmp_path / "cuts.txt").write_text("16\n")
    assert call(str(ab), str(tmp_path / "file"), *common, "--scene-cuts", str(tmp_path / "cuts.txt"))[0] == 0
    frames = {k: list(read_image_folder(tmp_path / k)) for k in ("auto", "alone", "file")}
    assert len(frames["auto"]) == 24
    assert all(np.array_equal(x, y) for x, y in zip(frames["auto"][16:], frames["alone"]))
    assert all(np.array_equal(x, y) for x, y in zip(frames["auto"], frames["file"]))
    code, _, err = call(str(ab), str(tmp_path / "x"), *common, "--scene-cuts", str(tmp_path / "nope.txt"))
    assert code == 2 and "--scene-cuts" in err and len(err.strip().splitlines()) == 1
