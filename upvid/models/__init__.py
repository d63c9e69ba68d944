"""VSR architectures (one file each), shared blocks, and the ``weights.toml`` registry.

:mod:`~upvid.models.registry` (records, data only) -> :mod:`~upvid.models.weights` (cache, verify,
convert; :mod:`~upvid.models.sources` downloads) -> :mod:`~upvid.models.load` (record + weights ->
:class:`~upvid.models.upscaler.Upscaler`); :mod:`~upvid.models.foreign` reads other checkpoints
through spandrel.
"""

from upvid.models.load import load_model
from upvid.models.registry import ModelRecord, get_record, list_models
from upvid.models.upscaler import Upscaler

__all__ = ["ModelRecord", "Upscaler", "get_record", "list_models", "load_model"]
