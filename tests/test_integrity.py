"""Integrity defects of the second adversarial pass (issue 22) that are fixed: each case fails
with one line and its documented exit code, or works, and never writes what it should not."""

from __future__ import annotations

import os
import shutil

import av
import pytest

from tests.cli import call, run as run_cli

PREVIEW = ["-m", "bicubic", "--frames", "0:2", "-q"]


@pytest.mark.parametrize("args,code,message", [
    (["--format", "xyz", "-o", "outdir"], 2, "--format must be one of"),
    (["--bit-depth", "16"], 2, "--bit-depth 16 is for PNG-folder outputs"),
    (["--segment-seconds", "nan"], 2, "--segment-seconds must be > 0"),
])
def test_bad_values_are_usage_errors_before_any_work(realshort, tmp_path, args, code, message):
    out = tmp_path / "o.mp4"
    rc, _, err = call(str(realshort), *([] if "-o" in args else [str(out)]), *PREVIEW,
                      *[a if a != "outdir" else str(tmp_path / "outdir") for a in args])
    assert rc == code and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not list((tmp_path / "outdir").glob("*") if (tmp_path / "outdir").exists() else [])


def test_an_empty_directory_named_like_a_video_is_not_filled_with_frames(realshort, tmp_path):
    out = tmp_path / "vid.mp4"
    out.mkdir()
    rc, _, err = call(str(realshort), str(out), *PREVIEW)
    assert rc == 4 and "is a directory" in err
    assert out.is_dir() and not any(out.iterdir())


def test_paths_with_colons_are_local_files(realshort, tmp_path, monkeypatch):
    """`a:b.mp4` in and `x:y.mp4` out are files, and a local file named `http:evil.mp4` is read
    from the disk (no protocol, no network)."""
    monkeypatch.chdir(tmp_path)
    for name in ("a:b.mp4", "http:evil.mp4"):
        shutil.copy(realshort, name)
        rc, _, err = call(name, "x:y.mp4", *PREVIEW, "--overwrite")
        assert rc == 0, err
        with av.open("file:x:y.mp4") as c:
            assert sum(1 for _ in c.decode(video=0)) == 2


def test_a_fifo_input_is_refused_instead_of_hanging(tmp_path):
    fifo = tmp_path / "in.mp4"
    os.mkfifo(fifo)
    r = run_cli(fifo, tmp_path / "o.mp4", "-m", "bicubic", timeout=60)
    assert r.returncode == 3 and "not a regular file" in r.stderr


def test_segments_are_on_disk_before_the_journal_names_them(realshort, tmp_path, monkeypatch):
    import upvid.job.sinks as job

    synced, named = [], []
    real_fsync, real_save = job._fsync, job.Journal.save

    def fsync(path):
        synced.append(os.path.basename(path))
        real_fsync(path)

    def save(self):
        for s in self.segments:
            named.append((s["file"], s["file"] in synced))
        real_save(self)

    monkeypatch.setattr(job, "_fsync", fsync)
    monkeypatch.setattr(job.Journal, "save", save)
    rc, _, err = call(str(realshort), str(tmp_path / "o.mkv"), "-m", "bicubic", "--frames", "0:6", "-q",
                      "--segment-frames", "2", "--preset", "ultrafast")
    assert rc == 0, err
    assert {f for f, _ in named} == {"seg-000000.mkv", "seg-000001.mkv", "seg-000002.mkv"}
    assert all(ok for _, ok in named)


def test_a_join_killed_earlier_leaves_no_temporary_output_behind(realshort, tmp_path):
    """A `.NAME.upvid-PID.partial.EXT` of a process that no longer runs (SIGKILL during the join)
    is removed by the next job that publishes NAME; one of a live process is kept."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    stale = tmp_path / f".o.upvid-{int(dead.stdout)}.partial.mp4"
    stale.write_bytes(b"\0" * 4096)
    live = tmp_path / f".o.upvid-{os.getppid()}.partial.mp4"
    live.write_bytes(b"x")
    rc, _, err = call(str(realshort), str(tmp_path / "o.mp4"), *PREVIEW)
    assert rc == 0, err
    assert not stale.exists() and live.exists() and (tmp_path / "o.mp4").is_file()


def test_a_full_disk_at_the_start_leaves_no_empty_work_folder(realshort, tmp_path, monkeypatch):
    import upvid.job.run as job
    from upvid.errors import OutputError

    def full(self):
        raise OutputError(f"{self.path}: no space left on device")

    monkeypatch.setattr(job.Journal, "save", full)
    rc, _, err = call(str(realshort), str(tmp_path / "o.mp4"), *PREVIEW)
    assert rc == 4 and "no space left on device" in err
    assert list(tmp_path.iterdir()) == []
