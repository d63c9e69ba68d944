"""Batches: several inputs and folders with --output-dir, one result line per input, a --json
summary, the first failure's exit code, --skip-existing, --format."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from tests.cli import call, run as run_cli
from tests.media import describe, make_clip, pattern

ARGS = ["-m", "bicubic", "-s", "2", "--preset", "ultrafast"]


@pytest.fixture()
def inputs(tmp_path) -> dict[str, Path]:
    from upvid.io.images import write_image

    vids = tmp_path / "videos"
    vids.mkdir()
    make_clip(vids / "a.mp4", n=4)
    make_clip(vids / "b.mkv", n=5, pts=[0, 40, 200, 240, 400])
    (vids / "c.mp4").write_bytes(b"garbage" * 100)  # a bad file among good ones
    (vids / "readme.txt").write_text("not a video; ignored when the folder is expanded")
    imgs = tmp_path / "shots"
    imgs.mkdir()
    for i in range(3):
        write_image(pattern(i, 16, 12), imgs / f"{i}.png")
    single = make_clip(tmp_path / "single.mov", n=3)
    return {"videos": vids, "images": imgs, "single": single, "missing": tmp_path / "nope.mp4"}


def test_batch_results_json_and_exit_code(inputs, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = call(inputs["videos"], inputs["images"], inputs["single"], inputs["missing"],
                                "--output-dir", out, "--json", *ARGS)
    assert code == 3  # the first failure (c.mp4: not a video)
    summary = json.loads(stdout)
    assert (summary["ok"], summary["failed"], summary["skipped"], summary["exit_code"]) == (4, 2, 0, 3)
    rows = {Path(r["input"]).name: r for r in summary["results"]}
    assert rows["c.mp4"]["status"] == "failed" and rows["c.mp4"]["exit_code"] == 3
    assert rows["nope.mp4"]["status"] == "failed" and "no such file" in rows["nope.mp4"]["error"]
    assert rows["b.mkv"]["frames"] == 5 and rows["b.mkv"]["size"] == "32x24->64x48"
    # one line per input on stderr, in order, numbered
    lines = [line for line in stderr.splitlines() if line.startswith("upvid: [")]
    assert [line.split("]")[0] for line in lines] == [f"upvid: [{k}/6" for k in range(1, 7)]
    assert "failed (exit 3)" in lines[2] and ": ok, 4 frames" in lines[0]
    # outputs: named after the inputs, containers kept, image folder -> image folder
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.mkv", "shots", "single.mov"]
    assert describe(out / "b.mkv")["pts_s"] == [0.0, 0.04, 0.2, 0.24, 0.4]
    assert sorted(p.name for p in (out / "shots").iterdir()) == ["00000000.png", "00000001.png", "00000002.png"]

    # again with --skip-existing: the done ones are skipped, the bad ones still fail
    code, stdout, stderr = call(inputs["videos"], inputs["images"], "--output-dir", out, "--json", "--skip-existing", *ARGS)
    summary = json.loads(stdout)
    assert code == 3 and (summary["ok"], summary["skipped"], summary["failed"]) == (0, 3, 1)
    assert stderr.count("skipped (output exists)") == 3

    # without --skip-existing or --overwrite, existing outputs are failures with exit code 4
    code, stdout, _ = call(inputs["single"], "--output-dir", out, "--json", *ARGS)
    assert code == 4 and json.loads(stdout)["results"][0]["exit_code"] == 4


def test_batch_format_and_name_clash(inputs, tmp_path):
    out = tmp_path / "o"
    code, stdout, stderr = call(inputs["videos"] / "a.mp4", inputs["videos"] / "b.mkv", "--output-dir", out,
                                "--format", "webm", "-q", *ARGS)
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.webm", "b.webm"]
    assert describe(out / "a.webm")["codec"] == "vp9"  # --codec auto picks VP9 for WebM
    (tmp_path / "x").mkdir()
    make_clip(tmp_path / "x" / "a.mkv", n=2)
    # inputs sharing a name keep their folder structure under --output-dir, each reported
    code, stdout, stderr = call(inputs["videos"] / "a.mp4", tmp_path / "x" / "a.mkv", "--output-dir", out,
                                "--format", "mp4", "--json", *ARGS)
    assert code == 0, stderr
    results = json.loads(stdout)["results"]
    written = sorted(Path(r["output"]) for r in results)
    assert len(results) == 2 and len(set(written)) == 2 and all(r["status"] == "ok" for r in results)
    assert all(p.name == "a.mp4" and p.is_file() and out in p.parents for p in written)
    assert {p.parent.name for p in written} == {inputs["videos"].name, "x"}
    # two inputs in one folder with the same stem: the input's suffix tells them apart; --suffix
    make_clip(tmp_path / "x" / "a.mp4", n=2)
    code, stdout, stderr = call(tmp_path / "x" / "a.mp4", tmp_path / "x" / "a.mkv", "--output-dir", tmp_path / "o2",
                                "--format", "mp4", "--suffix", "_x2", *ARGS)
    assert code == 0, stderr
    assert sorted(p.name for p in (tmp_path / "o2").rglob("*.mp4")) == ["a_x2-mkv.mp4", "a_x2-mp4.mp4"]


def test_batch_stops_on_errors_that_concern_every_input(inputs, tmp_path):
    code, stdout, stderr = call(inputs["videos"], "--output-dir", tmp_path / "o", "-m", "no-such-model")
    assert code == 5 and stderr.count("\n") == 1 and "no-such-model" in stderr


def test_single_job_skip_existing_and_json(inputs, tmp_path):
    out = tmp_path / "o.mp4"
    code, stdout, _ = call(inputs["single"], out, "--json", *ARGS)
    assert code == 0 and json.loads(stdout)["results"][0]["status"] == "ok"
    code, stdout, stderr = call(inputs["single"], out, "--skip-existing", "--json", *ARGS)
    assert code == 0 and json.loads(stdout)["skipped"] == 1 and "skipped" in stderr
    code, stdout, stderr = call(inputs["missing"], tmp_path / "x.mp4", "--json", *ARGS)
    assert code == 3 and json.loads(stdout)["results"][0]["exit_code"] == 3 and stderr.count("\n") == 1


def test_usage(inputs, tmp_path):
    code, _, stderr = call(inputs["single"], *ARGS)
    assert code == 2 and "--output-dir" in stderr
    code, _, stderr = call(inputs["single"], tmp_path / "a.mp4", tmp_path / "b.mp4", *ARGS)
    assert code == 2
    (tmp_path / "file").write_text("x")
    code, _, stderr = call(inputs["single"], "--output-dir", tmp_path / "file", *ARGS)
    assert code == 4 and "not a directory" in stderr


def test_batch_subprocess(inputs, tmp_path):
    r = run_cli(inputs["videos"], "--output-dir", tmp_path / "o", "--json", *ARGS)
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert json.loads(r.stdout)["ok"] == 2
    assert len([line for line in r.stderr.splitlines() if line.startswith("upvid: [")]) == 3


def test_folder_expansion_takes_ogg_files(tmp_path):
    """.ogg files in a folder are inputs (not silently skipped): an audio-only one is reported as such."""
    import numpy as np

    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "v.mkv", n=2)
    with av.open(str(folder / "a.ogg"), "w") as c:
        s = c.add_stream("flac", rate=16000)
        s.layout = "mono"
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), format="s16", layout="mono")
        f.sample_rate, f.pts = 16000, 0
        c.mux(s.encode(f))
        c.mux(s.encode(None))
    code, stdout, stderr = call(folder, "--output-dir", tmp_path / "o", "--json", *ARGS)
    results = {Path(r["input"]).name: r for r in json.loads(stdout)["results"]}
    assert set(results) == {"a.ogg", "v.mkv"}
    assert results["v.mkv"]["status"] == "ok" and results["a.ogg"]["exit_code"] == 3 and code == 3
