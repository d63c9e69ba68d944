"""An input file held open for the whole job, so that what is read at the end (the audio,
subtitles and chapters copied at the join) comes from the same file as the frames, even if the
path is deleted or atomically replaced while the job runs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import av

from upvid.errors import InputError

log = logging.getLogger("upvid")


class HeldInput:
    """An open descriptor on the input and the identity it had when the job started.

    Args:
        path: the input file.

    Raises:
        InputError: it cannot be opened.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as e:
            raise InputError(f"{self.path}: cannot open ({e.strerror or e})") from e
        self._copies: list = []
        st = os.fstat(self._file.fileno())
        self.identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def replaced(self) -> bool:
        """True when the path no longer names the file held (deleted, replaced or rewritten)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return True
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != self.identity

    def open(self) -> av.container.InputContainer:
        """A new demuxer on the held file (from its start), whatever the path names now.

        Raises:
            InputError: the held file no longer parses (it was rewritten in place).
        """
        f = os.fdopen(os.dup(self._file.fileno()), "rb")
        self._copies.append(f)  # PyAV does not close a file object it was given: close() does
        f.seek(0)
        try:
            return av.open(f, "r", metadata_errors="replace")
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise InputError(f"{self.path}: cannot read it again ({e}); it was changed while the job ran") from e

    def close(self) -> None:
        """Release the descriptors (the demuxers opened from it must be closed first)."""
        for f in self._copies:
            f.close()
        self._copies.clear()
        self._file.close()

    def __enter__(self) -> HeldInput:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
