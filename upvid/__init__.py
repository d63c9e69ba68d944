"""upvid: command-line video super-resolution, and its Python API.

Data flow: probe -> decode (:mod:`upvid.io`) -> clips, temporal padding, tiles
(:mod:`upvid.engine`) -> model (:mod:`upvid.models`) -> stitch -> encode + mux (:mod:`upvid.io`).

The API (:mod:`upvid.api`): :func:`upscale` (a job, as ``upvid IN OUT``), :func:`load_model`,
:func:`upscale_frames` (arrays in, arrays out), and the typed errors of :mod:`upvid.errors`, each
with the CLI's exit code. Imported on first use, so ``import upvid`` stays light.
"""

__version__ = "0.1.0"

_API = {"upscale", "upscale_frames", "load_model", "JobOptions", "JobResult", "Upscaler"}
_ERRORS = {"UpvidError", "UsageError", "InputError", "OutputError", "UnknownModelError", "WeightsError",
           "OutOfMemoryError", "EncodeError", "PipeClosedError", "ModelInputError"}

__all__ = sorted(_API | _ERRORS | {"__version__"})


def __getattr__(name: str):
    if name in _API:
        from upvid import api

        return getattr(api, name)
    if name in _ERRORS:
        from upvid import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'upvid' has no attribute {name!r}")
