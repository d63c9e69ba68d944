"""One job over several workers (issue 17): the chunk plan, local device threads, a real local Ray
cluster (CPU actors), a worker killed mid-chunk, Ctrl-C and --resume with another worker count.

Outputs are compared decoded-frame by decoded-frame with a single run, encoded losslessly (FFV1)
so any difference is the model's.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from tests import cli
from tests.data import WEIGHTS, need
from upvid.errors import OutputError, UsageError
from upvid.job import JobOptions
from upvid.job.split import Chunk, plan

N = 24
N_REC = 16


def _shrink(src: Path, out: Path, size: tuple[int, int], n: int) -> Path:
    """The first ``n`` frames of a real clip at ``size``, with its audio (H.264 + AAC)."""
    with av.open(str(src)) as c, av.open(str(out), "w") as o:
        rate = c.streams.video[0].average_rate
        v = o.add_stream("libx264", rate=rate)
        v.width, v.height, v.pix_fmt = *size, "yuv420p"
        a_in = c.streams.audio[0]
        a = o.add_stream_from_template(a_in)
        k = 0
        for p in c.demux(c.streams.video[0], a_in):
            if p.stream is a_in:
                if p.dts is not None and float(p.pts * p.time_base) < n / rate:
                    p.stream = a
                    o.mux(p)
                continue
            for f in p.decode():
                if k < n:
                    g = f.reformat(width=size[0], height=size[1], format="yuv420p")
                    g.pts, g.time_base = k, 1 / rate
                    o.mux(v.encode(g))
                k += 1
        o.mux(v.encode())
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory, realshort) -> dict[str, Path]:
    """The real sample, shrunk: 24 frames at 160x120 for rlfn-x4, 16 at 64x48 for BasicVSR."""
    d = tmp_path_factory.mktemp("dist")
    return {"rlfn": _shrink(realshort, d / "small.mp4", (160, 120), N),
            "basicvsr": _shrink(realshort, d / "tiny.mp4", (64, 48), N_REC)}


def _frames(path: Path) -> tuple[list[np.ndarray], list[float]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
        return [f.to_ndarray(format="rgb24") for f in frames], [round(float(f.pts * f.time_base), 4) for f in frames]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


MODELS = {"rlfn": ["-m", "rlfn-x4", "--weights-dir", str(WEIGHTS)],
          "basicvsr": ["-m", "basicvsr", "--random-weights", "--clip", "6", "--overlap", "2", "--tile", "0"]}


@pytest.fixture(scope="module")
def single(clips, tmp_path_factory):
    """Single-process runs (FFV1) to compare with."""
    need(WEIGHTS)
    d = tmp_path_factory.mktemp("single")
    out = {}
    for name, args in MODELS.items():
        o = d / f"{name}.mkv"
        code, _, err = cli.call(clips[name], o, *args, "--codec", "ffv1", "-q", "--scene-cuts", "off")
        assert code == 0, err
        out[name] = o
    return out


def _opts(name: str, **kw) -> JobOptions:
    base = {"rlfn": dict(model="rlfn-x4", weights_dir=WEIGHTS),
            "basicvsr": dict(model="basicvsr", random_weights=True, chunk=6, overlap=2, tile=0)}[name]
    return JobOptions(codec="ffv1", scene_cuts="off", **base, **kw)


# -- the plan ------------------------------------------------------------------------------
def test_plan_prefers_cuts_and_gives_context_elsewhere():
    chunks = plan(100, "sliding-window", 5, 1, 30, cuts=[33, 70])
    assert [(c.first, c.end) for c in chunks] == [(0, 33), (33, 70), (70, None)]
    assert all(c.lead == 0 and c.tail == 0 for c in chunks)  # every boundary is a cut: shots are independent
    chunks = plan(100, "sliding-window", 5, 1, 30)
    assert [(c.first, c.end, c.lead, c.tail) for c in chunks] == [(0, 30, 0, 2), (30, 60, 2, 2), (60, None, 2, 0)]
    # recurrent, clips of 8 sharing 2: schedule starts 0, 6, 12, ...; boundaries at the starts
    # nearest 30 and 60; each chunk decodes from the start of the clip that holds its first frame
    # (lead 6 = 8 - 2; origin: that start in the schedule) to the end of its last clip (tail 2)
    rec = plan(100, "recurrent", 15, 8, 30, overlap=2)
    assert [(c.first, c.end, c.lead, c.tail, c.origin) for c in rec] == [
        (0, 30, 0, 2, 0), (30, 60, 6, 2, 24), (60, None, 6, 0, 54)]
    short = plan(20, "recurrent", 15, 8, 5, overlap=2)[-1]  # the clip holding 18 (12-19) is the short last
    assert (short.first, short.lead, short.origin) == (18, 12, 6)  # clip, which reaches back: from the one before
    assert plan(10, "recurrent", 15, 8, 30) == [Chunk(0, 0, None, 0, 0)]
    with pytest.raises(UsageError):
        plan(10, "recurrent", 15, 8, 0)


# -- local devices -------------------------------------------------------------------------
def test_devices_threads_give_the_single_run_frames(clips, single, tmp_path):
    out = tmp_path / "d.mkv"
    code, _, err = cli.call(clips["rlfn"], out, *MODELS["rlfn"], "--codec", "ffv1", "--scene-cuts", "off",
                            "--devices", "cpu,cpu", "--chunk-frames", "7", "-q")
    assert code == 0, err
    (a, ta), (b, tb) = _frames(single["rlfn"]), _frames(out)
    assert len(a) == len(b) == N and ta == tb and all(np.array_equal(x, y) for x, y in zip(a, b))
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]


def test_ctrl_c_keeps_chunks_and_resume_finishes_with_another_worker_count(clips, single, tmp_path):
    from upvid.job.broker import LocalBroker
    from upvid.job.distribute import run_distributed

    out = tmp_path / "r.mkv"
    opts = _opts("rlfn")
    broker = LocalBroker(opts, ["cpu"])
    real_render, seen = broker.workers[0].render, []

    def render(task):
        if len(seen) == 2:
            raise KeyboardInterrupt  # as Ctrl-C reaches the driver while the third chunk runs
        seen.append(task.chunk.index)
        return real_render(task)

    broker.workers[0].render = render
    with pytest.raises(KeyboardInterrupt):
        run_distributed([(clips["rlfn"], out)], opts, broker, chunk_frames=7)
    work = tmp_path / ".r.mkv.upvid-partial"
    assert not out.exists() and len(list(work.glob("seg-*.mkv"))) == 2
    resumed = LocalBroker(dataclasses.replace(opts, resume=True), ["cpu", "cpu"])
    r = run_distributed([(clips["rlfn"], out)], dataclasses.replace(opts, resume=True), resumed, chunk_frames=7)
    assert r[0].status == "ok" and r[0].frames == N and not work.exists()
    (a, ta), (b, tb) = _frames(single["rlfn"]), _frames(out)
    assert ta == tb and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_worker_that_cannot_see_the_work_folder_is_a_clear_error(clips, tmp_path):
    small_clip = clips["rlfn"]
    from upvid.io.probe import probe
    from upvid.job.render import Task, render
    from upvid.job.run import EngineFactory

    task = Task(str(small_clip), str(tmp_path / "not-mounted"), probe(small_clip), Chunk(0, 0, None, 0, 0), (),
                "ffv1", "yuv420p", (640, 480), ("off", False), ".mkv")
    with pytest.raises(OutputError, match="cannot see the work folder .*not-mounted"):
        render(task, _opts("rlfn"), EngineFactory(_opts("rlfn")))


def test_without_ray_the_option_is_a_usage_error_naming_the_extra(clips, tmp_path):
    small_clip = clips["rlfn"]
    code = ("import sys; sys.modules['ray'] = None\nfrom upvid.cli import main\n"
            f"main([{str(small_clip)!r}, {str(tmp_path / 'o.mkv')!r}, '-m', 'bicubic', '--ray'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and 'pip install "upvid[ray]"' in r.stderr and r.stderr.count("\n") == 1


# -- a real local Ray cluster ----------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="Ray is in the test extra (pip install -e '.[test]')")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 2**20, log_to_driver=False,
             logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.mark.slow  # a local Ray cluster start
def test_ray_cpu_actors_match_a_single_run(local_ray, clips, single, tmp_path):
    """Per-frame rlfn-x4: every decoded frame identical to a single run. Recurrent BasicVSR (random
    weights, 6-frame clips sharing 2): its chunks run the single run's clips and cross-fades, so
    the frames match up to float rounding between the actors' 1 torch thread and the single run's
    2 (measured 87.8 dB worst frame, at most 2 levels; before the chunks followed the clip
    schedule, 48.6 dB)."""
    from upvid.job.broker import RayBroker
    from upvid.job.distribute import run_distributed

    for name in ("rlfn", "basicvsr"):
        out = tmp_path / f"{name}.mkv"
        opts = _opts(name)
        broker = RayBroker(opts, None, workers=2, threads=1)
        try:
            assert len({pid for _, pid in broker.where()}) == 2  # two actor processes
            r = run_distributed([(clips[name], out)], opts, broker, chunk_frames=7 if name == "rlfn" else 5)
        finally:
            broker.close()
        n = N if name == "rlfn" else N_REC
        assert r[0].frames == n
        (a, ta), (b, tb) = _frames(single[name]), _frames(out)
        assert ta == tb and len(b) == n
        psnr = min(_psnr(x, y) for x, y in zip(a, b))
        worst = max(int(np.abs(x.astype(int) - y).max()) for x, y in zip(a, b))
        if name == "rlfn":
            assert psnr == float("inf"), psnr
        else:
            assert psnr > 80.0 and worst <= 2, (psnr, worst)


@pytest.mark.slow  # a local Ray cluster start
def test_a_killed_actor_reruns_its_chunk_and_nothing_is_lost(local_ray, clips, single, tmp_path, caplog):
    from upvid.job.broker import RayBroker
    from upvid.job.distribute import run_distributed

    out = tmp_path / "k.mkv"
    opts = _opts("rlfn")
    broker = RayBroker(opts, None, workers=2, threads=1)
    pids = [pid for _, pid in broker.where()]
    killed: list[int] = []
    real_run = broker.run

    def run(tasks, done):
        def on_submit(task, k):
            if task.chunk.index == 1 and not killed:  # chunk 1 just started on actor k: kill that process
                killed.append(pids[k])
                threading.Timer(0.3, os.kill, (pids[k], signal.SIGKILL)).start()
        return real_run(tasks, done, on_submit=on_submit)

    broker.run = run
    try:
        with caplog.at_level("WARNING", logger="upvid"):
            r = run_distributed([(clips["rlfn"], out)], opts, broker, chunk_frames=7)
    finally:
        broker.close()
    assert killed and "running it again" in caplog.text
    assert r[0].frames == N
    (a, ta), (b, tb) = _frames(single["rlfn"]), _frames(out)
    assert ta == tb and all(np.array_equal(x, y) for x, y in zip(a, b))  # nothing lost, nothing twice


def test_a_batch_goes_over_the_workers_largest_input_first(tmp_path):
    from tests.media import make_clip
    from upvid.job.broker import LocalBroker
    from upvid.job.distribute import run_distributed

    small = make_clip(tmp_path / "small.mp4", n=6, size=(32, 24), audio=())
    large = make_clip(tmp_path / "large.mp4", n=12, size=(64, 48), audio=())
    opts = JobOptions(model="bicubic", scale=2, codec="ffv1", scene_cuts="off")
    order: list[int] = []
    pairs = [(small, tmp_path / "small.mkv"), (large, tmp_path / "large.mkv")]
    r = run_distributed(pairs, opts, LocalBroker(opts, ["cpu"]), chunk_frames=4,
                        on_chunk=lambda k, i, n: order.append(k))
    assert [x.status for x in r] == ["ok", "ok"] and [x.frames for x in r] == [6, 12]
    assert order == [1, 1, 1, 0]  # one worker: the large input's 3 chunks first, then the small one's
