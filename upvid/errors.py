"""Typed errors. Each carries the process exit code the CLI turns it into.

They are raised where the problem arises; only :mod:`upvid.cli` turns them into a
one-line message on stderr and an exit code.

=====  ==========================  ===============================================
code   exception                   meaning
=====  ==========================  ===============================================
0      --                          success
1      (any other exception)       internal error (a bug: please report it)
2      :class:`UsageError`         bad command line (also Typer's own usage errors)
3      :class:`InputError`         input missing, unreadable, not a video, no frames
4      :class:`OutputError`        output exists (no ``--overwrite``), unwritable, disk full
5      :class:`UnknownModelError`  no such model / scale not offered by the model
6      :class:`WeightsError`       weights unavailable, download failed, sha256 mismatch
7      :class:`OutOfMemoryError`   out of memory even at the smallest tile
8      :class:`EncodeError`        the encoder or muxer failed (codec, pixel format, no ffmpeg binary)
9      :class:`PipeClosedError`    OUT is ``-`` and the reader of stdout went away (a broken pipe)
130    (KeyboardInterrupt)         interrupted (Ctrl-C / SIGINT / SIGTERM)
=====  ==========================  ===============================================
"""

from __future__ import annotations


class UpvidError(Exception):
    """Base class for all errors upvid reports to the user."""

    exit_code: int = 1


class UsageError(UpvidError):
    """Invalid combination of options or option values."""

    exit_code = 2


class InputError(UpvidError):
    """Input missing, unreadable, not a video, or with no decodable frame."""

    exit_code = 3


class OutputError(UpvidError):
    """Output exists, cannot be written, or the disk is full."""

    exit_code = 4


class UnknownModelError(UpvidError):
    """No model of that name in ``weights.toml``, or a scale the model does not offer."""

    exit_code = 5


class WeightsError(UpvidError):
    """Weights cannot be found, downloaded, verified (sha256) or loaded strictly."""

    exit_code = 6


class OutOfMemoryError(UpvidError):
    """The device ran out of memory even at the smallest tile size."""

    exit_code = 7


class EncodeError(UpvidError):
    """The encoder or muxer failed (unknown codec, unsupported pixel format...)."""

    exit_code = 8


class ModelInputError(UsageError):
    """A model's size rule was violated (e.g. frame count or size it cannot take)."""

    exit_code = 2


EXIT_INTERRUPTED = 130


class PipeClosedError(OutputError):
    """The program reading upvid's stdout closed it before the stream ended (a broken pipe)."""

    exit_code = 9
