"""``upvid bench``: quality (PSNR/SSIM) the VSR literature's way, and speed per pipeline stage.

Modules: :mod:`~upvid.bench.options` (one settings record per run kind), :mod:`~upvid.bench.datasets`
(GT folders, frame streams, published scores), :mod:`~upvid.bench.quality`, :mod:`~upvid.bench.speed`
(and :mod:`~upvid.bench.host`, what it measures on), :mod:`~upvid.bench.report` (Rich tables),
:mod:`~upvid.bench.schema` (the JSON), :mod:`~upvid.bench.metrics` (PSNR/SSIM) and
:mod:`~upvid.bench.degrade` (MATLAB bicubic, BI/BD).

**Quality on a dataset** (:func:`run_quality`, settings in :class:`QualityOptions`): for every ground-truth sequence of a dataset
folder, the GT is cropped to a multiple of the scale, degraded to the low-resolution input (BI:
MATLAB bicubic :func:`upvid.bench.degrade.bi_degrade`; BD: Gaussian blur of ``sigma`` (1.6) + subsample
:func:`upvid.bench.degrade.bd_degrade`; both rounded to 8 bits like the published LR PNGs) or read from
an ``lr_dir``, upscaled by the model through the streaming engine exactly as ``upvid IN OUT``
would (same clips, overlaps, tiles; 8-bit rounded output), and scored per frame with
:mod:`upvid.bench.metrics` (the functions the tests use): PSNR-Y and SSIM-Y (BT.601, unrounded Y;
Vid4/UDM10/Vimeo convention) and RGB PSNR (REDS4 convention), border crop ``crop_border`` (0 in
BasicVSR-family tables). Sequence score = mean over its frames; dataset score = mean over
sequences. Frames stream through: memory holds only the frames the engine has in flight.

**Quality on a video** (:func:`run_quality_video`): the video's own decoded frames are the GT
(cropped to a multiple of the scale), degraded the same way, upscaled and scored; one "sequence".

The pseudo-model ``"matlab-bicubic"`` (:data:`MATLAB_BICUBIC`) upscales with MATLAB's bicubic
(:func:`upvid.bench.degrade.imresize`) instead of a network: the "Bicubic" row of the papers' tables
(Vid4 BI x4: 23.78 dB / 0.6347, reproduced exactly), a check of the protocol itself. The
registry's ``bicubic`` model is PyTorch's bicubic (``a = -0.75``), which scores differently.

Dataset layout: ``dataset_dir`` holds one sub-folder of frames (PNG, 8-bit RGB) per sequence,
e.g. ``vid4/GT/{calendar,city,foliage,walk}/*.png``; a folder that itself contains images is
one sequence. If ``dataset_dir`` has a ``GT`` sub-folder, that is used. ``lr_dir`` (optional)
has the same sequence names with the matching LR frames.

**Speed** (:func:`run_speed`, settings in :class:`SpeedOptions`): the real upscale pipeline (:func:`upvid.io.read_frames` decode
thread -> :class:`upvid.engine.Engine` -> :class:`upvid.io.VideoWriter` x264 encode thread,
joined by :func:`upvid.engine.pipeline.run_pipeline`) on a clip (a given video, or a synthetic
H.264 clip of ``size`` and ``frames``), ``warmup`` untimed runs, then ``repeats`` timed runs;
the report is the median of each stage's seconds and fps = frames / seconds. The stages run
in parallel threads, so a stage's fps is its own throughput (what the pipeline would reach if
that stage were the only cost); ``end_to_end`` = frames / wall time from opening the encoder
to closing the file (its flush included). Peak host RSS is per run (``VmHWM`` reset through
``/proc/self/clear_refs`` before each run; elsewhere the process-lifetime ``ru_maxrss``); peak
CUDA memory is ``torch.cuda.max_memory_allocated`` (reset before each run). With
``isolate=True`` each model is measured in a fresh child process, so its peak RSS does not see
what other models or the caller left behind. The audio/subtitle remux that ``upvid IN OUT``
does after encoding is not part of it (it copies packets; it does not scale with the model).

**Compare**: the CLI runs several models on the same data and prints one table; the JSON is
``{"schema": "upvid.bench.compare/1", "kind": "quality" | "speed", "models": [...],
"results": [<one quality/1 or speed/1 object per model>]}``.

JSON schemas (keys are only ever added within a schema version; infinite PSNRs, from identical
frames, are written as the string ``"inf"``).

``upvid.bench.quality/1`` (:meth:`QualityResult.to_json`)::

    {
      "schema": "upvid.bench.quality/1",
      "model": str, "pretrained": bool,  # checkpoint loaded (false: random weights, or none needed)
      "source": "dataset" | "video",
      "dataset": str,                # label, e.g. "vid4" (folder name; "GT" resolves to its parent),
                                     # or the video's file name
      "dataset_dir": str,            # absolute path of the GT sequences (or of the video)
      "lr_source": str,              # "BI" / "BD" (synthesised) or the lr_dir path
      "degradation": "BI" | "BD", "sigma": float | null,   # sigma: BD blur (null for BI / lr_dir)
      "scale": int, "crop_border": int,
      "device": str, "dtype": "fp32" | "fp16" | "bf16",
      "engine": {"chunk": int, "overlap": int, "tile": int, "tile_overlap": int},  # {} for matlab-bicubic
      "sequences": [
        {"name": str, "frames": int, "lr_size": [h, w], "hr_size": [h, w],
         "psnr_y": float, "ssim_y": float, "psnr_rgb": float,     # means over frames (dB, -, dB)
         "model_s": float,                                        # wall s inside the engine
         "frame_psnr_y": [float, ...]}                            # per frame, in order
      ],
      "average": {"psnr_y": float, "ssim_y": float, "psnr_rgb": float},  # mean over sequences
      "frames": int,                 # total frames scored
      "timing": {"total_s": float, "model_s": float, "degrade_s": float, "metrics_s": float,
                 "read_s": float, "fps": float},   # fps = frames / model_s
      "published": {"dataset": str, "degradation": str, "psnr": float | null,
                    "ssim": float | null, "source": str} | null,
      "versions": {"upvid": str, "torch": str},
      "created": str                 # ISO 8601 UTC
    }

``upvid.bench.speed/1`` (:meth:`SpeedResult.to_json`)::

    {
      "schema": "upvid.bench.speed/1",
      "model": str, "pretrained": bool, "scale": int,
      "device": str, "device_name": str, "dtype": "fp32" | "fp16" | "bf16",
      "backend": {"name": "torch" | "openvino", "precision": "" | "f32" | "bf16" | "f16", "reason": str},
      "engine": {"chunk": int, "overlap": int, "tile": int, "tile_overlap": int},
      "input": {"source": "synthetic" | <video path>, "codec": str, "frames": int,
                "lr_size": [h, w], "hr_size": [h, w]},
      "encoder": {"codec": str, "crf": int, "preset": str, "pix_fmt": str},
      "warmup": int, "repeats": int,
      "seconds": {"decode": float, "model": float, "stitch": float, "encode": float,
                  "end_to_end": float},                     # medians over the timed runs
      "fps": {"decode": float, "model": float, "stitch": float, "encode": float,
              "end_to_end": float},                         # frames / seconds
      "memory": {"peak_rss_mib": float, "rss_method": "VmHWM per run" | "ru_maxrss (process)",
                 "rss_after_load_mib": float | null,        # resident after loading + warm-up
                 "cuda_peak_allocated_mib": float | null, "cuda_peak_reserved_mib": float | null},
      "runs": [{"decode_s": float, "model_s": float, "stitch_s": float, "encode_s": float,
                "total_s": float, "frames": int, "peak_rss_mib": float,
                "cuda_peak_allocated_mib": float | null}, ...],
      "load_s": float, "warmup_s": float, "isolated": bool,
      "host": {"cpu": str, "cpu_count": int, "torch_threads": int, "platform": str},
      "versions": {"upvid": str, "torch": str, "torchvision": str | null, "av": str,
                   "ffmpeg_libavcodec": str | null, "numpy": str, "python": str, "cuda": str | null},
      "created": str
    }
"""

from upvid.bench.datasets import PUBLISHED_BASELINES, find_sequences
from upvid.bench.options import QualityOptions, SpeedOptions
from upvid.bench.quality import MATLAB_BICUBIC, QualityResult, SequenceQuality, main_quality, run_quality, run_quality_video
from upvid.bench.report import fmt, render_quality, render_quality_compare, render_speed
from upvid.bench.schema import COMPARE_SCHEMA, SCHEMA, SPEED_SCHEMA, compare_json
from upvid.bench.speed import SpeedResult, SpeedRun, make_speed_clip, run_speed, run_speed_many

__all__ = [
    "COMPARE_SCHEMA",
    "MATLAB_BICUBIC",
    "PUBLISHED_BASELINES",
    "SCHEMA",
    "SPEED_SCHEMA",
    "QualityOptions",
    "QualityResult",
    "SequenceQuality",
    "SpeedOptions",
    "SpeedResult",
    "SpeedRun",
    "compare_json",
    "find_sequences",
    "fmt",
    "main_quality",
    "make_speed_clip",
    "render_quality",
    "render_quality_compare",
    "render_speed",
    "run_quality",
    "run_quality_video",
    "run_speed",
    "run_speed_many",
]
