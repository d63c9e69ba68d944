"""One upscaling job (IN -> OUT), resumable, and the planning of batches of jobs.

Modules: :mod:`~upvid.job.options` (JobOptions, JobResult), :mod:`~upvid.job.outputs` (OUT checks
and naming), :mod:`~upvid.job.memory` (the early memory check), :mod:`~upvid.job.resume` (journal,
lock, fingerprint), :mod:`~upvid.job.sinks` (segment and frame writers), :mod:`~upvid.job.run`
(:func:`run_job`) and :mod:`~upvid.job.batch` (:func:`plan_batch`).

A job never writes under OUT's final name until it has finished: the output is built in a
hidden work folder next to OUT, ``.<OUT name>.upvid-partial/``:

- a video OUT is encoded as numbered, cleanly closed video-only segments (``seg-000000.mp4``,
  one every ``segment_frames`` frames or ``segment_seconds`` seconds, whichever comes first);
- an image-folder OUT is written frame by frame (``frames/00000000.png``);
- ``journal.json`` records the segments that are complete and a fingerprint of the job.

At the end the segments are joined by copying their packets (no re-encoding) into a temporary
file together with the input's audio, subtitles and chapters (:func:`upvid.io.mux.assemble`),
renamed to OUT, and the work folder is removed. If the job is interrupted (Ctrl-C, SIGTERM,
SIGKILL, power loss), runs out of memory or disk space, or crashes, the complete segments stay;
running the same command with ``--resume`` re-decodes the input, skips the frames already done
(feeding the model a few frames of warm-up context before the resume point and dropping their
outputs), and continues. Segments keep the input's own timestamps, so VFR inputs stay exact.
No failure deletes finished segments: after an input, encoder or join error the work folder
stays (a failed join leaves ``segments.ffconcat`` and says how to finish); only a job that
failed before its first segment, or an error that concerns the whole batch, leaves nothing.
"""

from upvid.job.batch import output_name, plan_batch
from upvid.job.memory import available_memory, check_memory, estimate_memory
from upvid.job.options import INPUT_VIDEO_SUFFIXES, NOT_VIDEO_SUFFIXES, JobOptions, JobResult
from upvid.job.outputs import check_output, is_image_input, is_image_output, output_size, work_dir_for
from upvid.job.resume import Journal, open_journal
from upvid.job.run import EngineFactory, GlobalError, JoinError, run_job

__all__ = [
    "INPUT_VIDEO_SUFFIXES",
    "NOT_VIDEO_SUFFIXES",
    "EngineFactory",
    "GlobalError",
    "JobOptions",
    "JobResult",
    "JoinError",
    "Journal",
    "available_memory",
    "check_memory",
    "check_output",
    "estimate_memory",
    "is_image_input",
    "is_image_output",
    "open_journal",
    "output_name",
    "output_size",
    "plan_batch",
    "run_job",
    "work_dir_for",
]
