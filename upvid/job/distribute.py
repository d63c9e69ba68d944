"""One film (or a batch) over several devices or a Ray cluster, joined into OUT exactly once.

The driver probes each input, finds its scene cuts (one decoding pass, PySceneDetect, as a
single run would), splits it into chunks (:mod:`upvid.job.split`), and hands every chunk of every
input to the broker (:mod:`upvid.job.broker`), largest input first. Each chunk comes back as a
closed segment in the input's work folder, recorded in its journal at once; when all of an
input's chunks are there, the segments are joined by copying their packets and muxed with the
input's audio, subtitles and chapters (:func:`upvid.io.mux.assemble`), as for a single run.
The work folder (beside OUT) must be on storage every worker sees at the same path.

``--resume`` continues with the chunks that are missing, with any number of workers: the plan
depends only on the video, the model and ``--chunk-frames``.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time
from pathlib import Path

from upvid.engine.shots import cut_finder
from upvid.errors import InputError, OutputError, UpvidError, UsageError
from upvid.io.codecs import check_frame_size
from upvid.io.deinterlace import deinterlaced_info, resolve_mode
from upvid.io.hdr import warn_hdr
from upvid.io.held import HeldInput
from upvid.io.mux import AudioOptions, assemble, check_audio, remove_stale_temps, unique_temp_path
from upvid.io.probe import bit_depth_of, open_input, probe
from upvid.io.reader import read_frames
from upvid.job.clock import FrameClock
from upvid.job.encoding import choose_encoding
from upvid.job.options import JobOptions, JobResult
from upvid.job.outputs import check_output, is_image_input, is_image_output, output_size, publish_file, work_dir_for
from upvid.job.render import Task, segment_name
from upvid.job.resume import Journal, fingerprint, open_journal, unlock
from upvid.job.run import EngineFactory, GlobalError, _join_failed
from upvid.job.split import plan

log = logging.getLogger("upvid")

#: ``--chunk-frames`` default: about 24 s at 25 fps, long enough that the context is a small overhead.
CHUNK_FRAMES = 600


@dataclasses.dataclass
class _Job:
    k: int
    inp: Path
    out: Path
    info: object
    tasks: list[Task]
    journal: Journal
    audio: AudioOptions
    t0: float
    left: set[int]
    overwrite: bool = False
    held: HeldInput | None = None  # the input as opened at the start: the join reads its audio from it


def find_cuts(inp: Path, info, opts: JobOptions, family: str, frames: int, deinterlace) -> tuple[list[int], int]:
    """Scene cuts (frame numbers) and the frame count, from one decoding pass (as a single run finds them).

    Without cut detection (``--scene-cuts off``, or a per-frame model) the video packets are
    counted instead (no decoding).
    """
    clock = FrameClock(info, False)
    finder = cut_finder(opts.scene_cuts, family, frames, fps=float(info.fps or 25), detector=opts.scene_detector,
                        threshold=opts.scene_threshold, time_of=clock.times.get, frame_of=clock.numbers.get)
    if finder is None:
        with open_input(inp) as c:
            v = c.streams[info.stream_index] if info.stream_index >= 0 else c.streams.video[0]
            n = sum(1 for p in c.demux(v) if p.size)
        return [], n * (2 if deinterlace[0] == "bwdif-field" else 1)
    n = 0
    for f in clock.renumber(read_frames(inp, info, high_bit_depth=False, deinterlace=deinterlace)):
        finder.feed(n, f.picture)
        n += 1
    return list(finder.found), n


def run_distributed(pairs: list[tuple[Path, Path]], opts: JobOptions, broker, *, chunk_frames: int = CHUNK_FRAMES,
                    on_chunk=None) -> list[JobResult]:
    """Upscale ``pairs`` of (IN, OUT) with the broker's workers.

    Args:
        pairs: video files and their OUTs (video files).
        opts: the job options (shared by every input).
        broker: a :class:`~upvid.job.broker.LocalBroker` or :class:`~upvid.job.broker.RayBroker`.
        chunk_frames: the target chunk length in frames.
        on_chunk: called ``(job_index, chunk_index, frames)`` as each chunk finishes.

    Returns:
        One :class:`JobResult` per pair (``skipped`` with ``--skip-existing``).

    Raises:
        UsageError, InputError, OutputError, EncodeError: the first failure (finished chunks are
        kept for ``--resume``); GlobalError: the model or engine options.
    """
    if opts.span is not None:
        raise UsageError("--start/--duration/--frames are for one process (a preview needs no cluster)")
    net, cfg = EngineFactory(dataclasses.replace(opts, device="cpu")).prepare()
    rec = net.record
    jobs: list[_Job] = []
    results: dict[int, JobResult] = {}
    for k, (inp, out) in enumerate(pairs):
        inp, out = Path(inp), Path(out)
        if is_image_input(inp) or is_image_output(out):
            raise UsageError(f"{inp} -> {out}: --devices/--ray take video files in and out")
        if not check_output(inp, out, opts):
            results[k] = JobResult(str(inp), str(out), "skipped", error="output exists")
            continue
        jobs.append(_prepare(k, inp, out, opts, net, cfg, rec, chunk_frames))
    order = sorted(jobs, key=lambda j: -j.inp.stat().st_size)  # largest first
    lock = threading.Lock()
    by_index = {id(j): j for j in jobs}
    tasks = [(id(j), t) for j in order for t in j.tasks if t.chunk.index in j.left]
    owner = {id(t): jid for jid, t in tasks}

    def done(task: Task, entry: dict) -> None:
        j = by_index[owner[id(task)]]
        with lock:
            j.journal.segments = sorted([*j.journal.segments, entry], key=lambda e: e["index"])
            j.journal.frames_done = sum(e["frames"] for e in j.journal.segments)
            j.left.discard(task.chunk.index)
            j.journal.save()
        if on_chunk is not None:
            on_chunk(j.k, task.chunk.index, entry["frames"])

    try:
        broker.run([t for _, t in tasks], done)
    except BaseException as e:
        for j in jobs:
            if j.held is not None:
                j.held.close()
            unlock(j.journal.dir)
            if j.journal.segments and not isinstance(e, GlobalError):
                log.warning("%d chunks of %s are done and kept in %s; run the same command with --resume to continue",
                            len(j.journal.segments), j.out.name, j.journal.dir)
            elif not j.journal.segments:
                shutil.rmtree(j.journal.dir, ignore_errors=True)
        raise
    for j in jobs:
        try:
            results[j.k] = _join(j)
        finally:
            if j.held is not None:
                j.held.close()
    return [results[k] for k in sorted(results)]


def _prepare(k: int, inp: Path, out: Path, opts: JobOptions, net, cfg, rec, chunk_frames: int) -> _Job:
    t0 = time.perf_counter()
    info = probe(inp)
    deint = resolve_mode(opts.deinterlace, info, inp)
    info = deinterlaced_info(info, deint[0])
    enc = choose_encoding(info, out, opts)
    codec, pix_fmt = enc.codec, enc.pix_fmt
    audio = AudioOptions(opts.audio_codec, opts.audio_bitrate)
    check_audio(info, out, audio)
    warn_hdr(info, codec, bit_depth_of(pix_fmt), log)
    size = output_size(info.width, info.height, net.scale, opts)
    check_frame_size(*size)
    cuts, total = find_cuts(inp, info, opts, net.family, rec.frames, deint)
    if total == 0:
        raise InputError(f"{inp}: no decodable video frame")
    chunks = plan(total, net.family, rec.frames, cfg.chunk, chunk_frames, cuts, cfg.overlap, max(1, rec.clip_grid))
    fp = fingerprint(inp, out, opts, net, codec, pix_fmt)
    fp["distributed"] = {"chunk_frames": chunk_frames, "chunks": len(chunks)}
    work = work_dir_for(out)
    journal = open_journal(work, fp, opts.resume)
    journal.cuts = cuts
    for stale in work.glob(".seg-*.tmp*"):  # a chunk whose worker died before renaming it
        stale.unlink(missing_ok=True)
    have = {e["index"] for e in journal.segments if (work / e["file"]).is_file()}
    journal.segments = [e for e in journal.segments if e["index"] in have]
    held = HeldInput(inp)
    stamp = (held.identity[2], held.identity[3])
    tasks = [Task(str(inp.resolve()), str(work.resolve()), info, c, tuple(cuts), codec, pix_fmt, size, deint,
                  out.suffix.lower(), stamp) for c in chunks]
    left = {c.index for c in chunks} - have
    if have:
        log.info("resuming %s: %d of %d chunks done", out.name, len(have), len(chunks))
    journal.save()
    return _Job(k, inp, out, info, tasks, journal, audio, t0, left, opts.overwrite, held)


def _join(j: _Job) -> JobResult:
    journal, work = j.journal, j.journal.dir
    segs = sorted(journal.segments, key=lambda e: e["index"])
    if [e["file"] for e in segs] != [segment_name(t) for t in j.tasks]:
        unlock(work)
        raise OutputError(f"{j.out}: {len(j.tasks) - len(segs)} chunk(s) missing in {work}; run with --resume")
    for stale in remove_stale_temps(j.out):
        log.info("removed %s, left by an interrupted join", stale.name)
    tmp = unique_temp_path(j.out)
    recorded = [e.get("pts") for e in segs]
    try:
        assemble([work / e["file"] for e in segs], tmp, j.info,
                 recorded_pts=recorded if all(r is not None for r in recorded) else None, audio=j.audio, held=j.held)
    except UpvidError as e:
        tmp.unlink(missing_ok=True)
        unlock(work)
        raise _join_failed(e, j.inp, j.out, journal) from e
    try:
        publish_file(tmp, j.out, j.overwrite, work)
    except OutputError:
        unlock(work)
        raise
    unlock(work)
    shutil.rmtree(work, ignore_errors=True)
    n = sum(e["frames"] for e in segs)
    return JobResult(str(j.inp), str(j.out), "ok", frames=n, seconds=round(time.perf_counter() - j.t0, 3),
                     size=f"{j.info.width}x{j.info.height}->{j.tasks[0].size[0]}x{j.tasks[0].size[1]}")
