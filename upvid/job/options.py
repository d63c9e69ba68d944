"""The options of a job (everything besides IN and OUT) and its result record."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

from upvid.engine.shots import DETECTORS
from upvid.errors import UsageError
from upvid.io.codecs import VIDEO_SUFFIXES
from upvid.io.span import Span


#: File suffixes taken as video inputs when a folder is expanded for a batch.
INPUT_VIDEO_SUFFIXES = VIDEO_SUFFIXES | {".mpg", ".mpeg", ".ogv", ".ogg", ".flv", ".wmv", ".3gp", ".m2ts", ".vob", ".y4m"}

#: Suffixes of media that are not video (audio, still images, subtitles): refused as OUT, since
#: an OUT without a video suffix would otherwise be taken as a folder of PNG frames.
NOT_VIDEO_SUFFIXES = {".ogg", ".mp3", ".m4a", ".aac", ".ac3", ".wav", ".flac", ".opus", ".oga", ".wma", ".mka", ".mp2",
                      ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".srt", ".ass", ".vtt",
                      ".txt", ".json"}


@dataclass
class JobOptions:
    """Everything a job needs besides IN and OUT (the ``upvid upscale`` options)."""

    model: str = "basicvsrpp"
    scale: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    chunk: int | None = None
    overlap: int | None = None
    tile: int | None = None
    tile_overlap: int | None = None
    codec: str = "auto"
    crf: int = 18
    preset: str = "medium"
    pix_fmt: str = "auto"
    bit_depth: int | None = None
    fps: Fraction = Fraction(25)
    weights_dir: Path | None = None
    overwrite: bool = False
    resume: bool = False
    skip_existing: bool = False
    segment_frames: int = 300
    segment_seconds: float = 60.0
    random_weights: bool = False
    compile: bool = False
    backend: str = field(default_factory=lambda: os.environ.get("UPVID_BACKEND") or "auto")  # auto|torch|openvino
    colour_in_engine: bool = True         # 4:2:0 <-> RGB in the engine (keeps superwhite); False: libswscale RGB
    outscale: float | None = None         # final size = outscale x input (model at its own scale, then resized)
    size: tuple[int, int] | None = None   # final (width, height)
    height: int | None = None             # final height, width keeping the aspect ratio
    audio_codec: str = "copy"             # copy | aac | opus | flac | none (--no-audio)
    audio_bitrate: int | None = None      # bits/s for transcoded audio
    suffix: str = ""                      # batch: appended to each output's stem (--suffix _x4)
    scene_cuts: str = "auto"              # auto (detect) | off | a file of cuts (upvid.engine.shots)
    scene_detector: str = "content"       # PySceneDetect detector: content | adaptive
    scene_threshold: float | None = None  # its threshold (default: PySceneDetect's)
    span: Span | None = None              # a preview: --start/--duration or --frames (upvid.io.span)
    denoise: float | None = None          # --denoise: weight of the model's own weights vs its twin's
    deinterlace: str = "auto"             # auto | off | bwdif | bwdif-field (upvid.io.deinterlace)
    encoder: str = "pyav"                 # pyav (in process) | ffmpeg (an external binary, upvid.io.external)

    def __post_init__(self) -> None:
        """Check the output-size options (they exclude each other).

        Raises:
            UsageError: more than one of ``outscale``/``size``/``height``, or a value out of range.
        """
        if sum(o is not None for o in (self.outscale, self.size, self.height)) > 1:
            raise UsageError("give one of --outscale, --size and --height")
        if self.outscale is not None and not 0 < self.outscale <= 64:
            raise UsageError(f"--outscale must be in (0, 64], got {self.outscale}")
        if self.height is not None and self.height < 2:
            raise UsageError(f"--height must be >= 2, got {self.height}")
        if self.size is not None and min(self.size) < 2:
            raise UsageError(f"--size must be at least 2x2, got {self.size[0]}x{self.size[1]}")
        if self.scene_cuts not in ("auto", "off") and not Path(self.scene_cuts).is_file():
            raise UsageError(f"--scene-cuts must be auto, off or a file of cuts; {self.scene_cuts}: no such file")
        if self.scene_detector not in DETECTORS:
            raise UsageError(f"--scene-detector must be one of {', '.join(DETECTORS)}, got {self.scene_detector!r}")
        from upvid.io.deinterlace import MODES
        from upvid.io.external import ENCODERS

        if self.encoder not in ENCODERS:
            raise UsageError(f"--encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")

        if self.deinterlace not in MODES:
            raise UsageError(f"--deinterlace must be one of {', '.join(MODES)}, got {self.deinterlace!r}")
        if self.scene_threshold is not None and not self.scene_threshold > 0:
            raise UsageError(f"--scene-threshold must be > 0, got {self.scene_threshold}")


@dataclass
class JobResult:
    """Outcome of one job (one line of the ``--json`` summary)."""

    input: str
    output: str | None
    status: str  # "ok", "skipped", "failed"
    exit_code: int = 0
    error: str | None = None
    frames: int = 0
    resumed_from: int = 0
    seconds: float = 0.0
    size: str | None = None
    backend: str | None = None  # "torch" or "openvino bf16", and why: "openvino bf16 (the CPU has BF16)"

    def to_dict(self) -> dict:
        return asdict(self)
