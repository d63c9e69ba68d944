"""VSR architectures (one file each), shared blocks, and the ``weights.toml`` registry."""

from upvid.models.registry import ModelRecord, Upscaler, get_record, list_models, load_model

__all__ = ["ModelRecord", "Upscaler", "get_record", "list_models", "load_model"]
