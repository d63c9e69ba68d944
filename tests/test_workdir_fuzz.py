"""A seeded fuzzer over the work folder of an interrupted job (issue 14): segments truncated,
zeroed, deleted, duplicated, swapped or reordered, journal fields edited, then ``--resume``.

Invariant: exit 0 only with an output whose decoded frames and timestamps equal an uninterrupted
run's (FFV1: lossless, so any difference is a wrong frame); otherwise a documented exit code with
a one-line message, and nothing outside the work folder touched.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import av
import pytest

from tests.cli import at_frame, call
from tests.media import make_clip

CASES = 100
ARGS = ["-m", "bicubic", "-s", "2", "--codec", "ffv1", "-q", "--segment-frames", "3", "--scene-cuts", "off"]
DOCUMENTED = {2, 3, 4, 8}


def _decoded(path: Path) -> tuple[list[bytes], list[float]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
        return ([f.to_ndarray(format="rgb24").tobytes() for f in frames],
                [round(float(f.pts * f.time_base), 4) for f in frames])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """An input, its uninterrupted output, and the work folder of the same job stopped at frame 10."""
    d = tmp_path_factory.mktemp("wdfuzz")
    src = make_clip(d / "in.mp4", n=15, size=(32, 24), audio=("aac",))
    ref = d / "ref" / "o.mkv"
    ref.parent.mkdir()
    assert call(src, ref, *ARGS)[0] == 0
    stopped = d / "stopped" / "o.mkv"
    stopped.parent.mkdir()
    with pytest.MonkeyPatch.context() as m:
        at_frame(m, 10)
        assert call(src, stopped, *ARGS)[0] == 130
    work = stopped.parent / ".o.mkv.upvid-partial"
    journal = json.loads((work / "journal.json").read_text())
    assert journal["frames_done"] == 9 and len(journal["segments"]) == 3
    return src, _decoded(ref), work


def _mutate(work: Path, rng: random.Random) -> str:
    j = json.loads((work / "journal.json").read_text())
    segs = j["segments"]
    files = sorted(work.glob("seg-*"))
    kind = rng.choice(["truncate", "zero", "delete", "dup-entry", "reorder", "swap-files", "frames_done",
                       "seg-frames", "seg-first", "outside", "pts", "complete", "garbage", "no-journal",
                       "fingerprint", "extra-file"])
    f = rng.choice(files)
    if kind == "truncate":
        data = f.read_bytes()
        f.write_bytes(data[: rng.randrange(1, len(data))])
    elif kind == "zero":
        f.write_bytes(b"")
    elif kind == "delete":
        f.unlink()
    elif kind == "dup-entry":
        k = rng.randrange(len(segs))
        segs.insert(rng.randrange(len(segs) + 1), dict(segs[k]))
    elif kind == "reorder":
        rng.shuffle(segs)
    elif kind == "swap-files":
        a, b = rng.sample(files, 2)
        tmp = work / "swap.tmp"
        a.rename(tmp)
        b.rename(a)
        tmp.rename(b)
    elif kind == "frames_done":
        j["frames_done"] = rng.choice([0, 5, 13, 500, -3])
    elif kind == "seg-frames":
        segs[rng.randrange(len(segs))]["frames"] += rng.choice([-1, 1, 7])
    elif kind == "seg-first":
        segs[rng.randrange(len(segs))]["first"] += rng.choice([-2, 1, 3])
    elif kind == "outside":
        segs[rng.randrange(len(segs))]["file"] = rng.choice(["../o.mkv", "/etc/passwd", "seg-000001.mkv/../x"])
    elif kind == "pts":
        s = segs[rng.randrange(len(segs))]
        s["pts"] = [0]
    elif kind == "complete":
        j["complete"] = True
    elif kind == "fingerprint":
        j["fingerprint"]["crf"] = 3
    elif kind == "extra-file":
        (work / "seg-000009.mkv").write_bytes(b"\x00" * 100)
    if kind == "garbage":
        (work / "journal.json").write_bytes(bytes(rng.randrange(256) for _ in range(80)))
    elif kind == "no-journal":
        (work / "journal.json").unlink()
    else:
        (work / "journal.json").write_text(json.dumps(j))
    return kind


@pytest.mark.slow  # a fuzzer
def test_work_folder_fuzzer(base, tmp_path):
    src, (ref_frames, ref_pts), stopped = base
    rng = random.Random(1234)
    problems, outcomes = [], {}
    for i in range(CASES):
        case = tmp_path / f"c{i}"
        case.mkdir()
        work = case / ".o.mkv.upvid-partial"
        shutil.copytree(stopped, work)
        (work / ".lock").unlink(missing_ok=True)
        kind = _mutate(work, rng)
        sentinel = case / "mine.txt"  # a file of the user's beside OUT
        sentinel.write_text("keep")
        code, _, err = call(src, case / "o.mkv", *ARGS, "--resume")
        outcomes[(kind, code)] = outcomes.get((kind, code), 0) + 1
        if sentinel.read_text() != "keep":
            problems.append(f"case {i} ({kind}): a file not upvid's was touched")
        if code == 0:
            frames, pts = _decoded(case / "o.mkv")
            if frames != ref_frames or pts != ref_pts:
                bad = sum(a != b for a, b in zip(frames, ref_frames)) + abs(len(frames) - len(ref_frames))
                problems.append(f"case {i} ({kind}): exit 0 but {bad} frames differ ({len(frames)} frames)")
        elif code not in DOCUMENTED or err.strip().count("\n") != 0:
            problems.append(f"case {i} ({kind}): exit {code}: {err.strip()[:300]}")
    print(sorted(outcomes.items()))
    assert not problems, "\n".join(problems)
    assert sum(n for (_, c), n in outcomes.items() if c == 0) >= CASES // 2  # most are repaired, not refused
