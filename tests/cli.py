"""The one way tests run the CLI: :func:`run` in a child process, :func:`call` in this one, :func:`spawn` to signal it."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping


def _command(args: tuple) -> list[str]:
    return [sys.executable, "-m", "upvid", *map(str, args)]


def _env(env: Mapping[str, str] | None, replace_env: bool) -> dict[str, str] | None:
    if env is None:
        return None
    return dict(env) if replace_env else {**os.environ, **env}


def run(*args, env: Mapping[str, str] | None = None, replace_env: bool = False, timeout: float = 300,
        **kwargs) -> subprocess.CompletedProcess:
    """``python -m upvid ARGS`` in a child process, output captured as text.

    Args:
        env: variables added to this process's environment (``replace_env``: the whole environment).
        timeout: seconds before the child is killed (``subprocess.TimeoutExpired``).
        **kwargs: passed to :func:`subprocess.run` (``cwd``, ``input``, ...).
    """
    return subprocess.run(_command(args), capture_output=True, text=True, timeout=timeout,
                          env=_env(env, replace_env), **kwargs)


def spawn(*args, env: Mapping[str, str] | None = None, **kwargs) -> subprocess.Popen:
    """``python -m upvid ARGS`` started in the background (to be signalled), output piped (as text unless ``text=False``)."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    kwargs.setdefault("text", True)
    return subprocess.Popen(_command(args), env=_env(env, False), **kwargs)


def call(*args) -> tuple[int, str, str]:
    """``upvid.cli.main(ARGS)`` in this process: (exit code, stdout, stderr) captured; the root
    logger's handlers and the SIGTERM/SIGINT handlers the CLI installs are restored afterwards."""
    from upvid.cli import main

    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers = root.handlers[:]
    root.handlers = []
    term, intr = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            for h in root.handlers[:]:
                root.removeHandler(h)
            root.handlers = handlers
            signal.signal(signal.SIGTERM, term)
            signal.signal(signal.SIGINT, intr)
    return code, out.getvalue(), err.getvalue()


def at_frame(monkeypatch, frame: int, then: Callable[[], None] | None = None, sink: str = "video") -> None:
    """When the job's sink reaches output frame ``frame``: run ``then()`` (and go on), or, without
    it, raise KeyboardInterrupt there (as a Ctrl-C: the job stops with exit 130, work kept).

    Args:
        monkeypatch: pytest's (or a ``monkeypatch.context()``).
        frame: the sink's output frame index (counted from where this run started).
        then: an action run once at that frame instead of the interrupt.
        sink: ``"video"`` (:class:`~upvid.job.sinks.VideoSink`) or ``"image"`` (PNG folders).
    """
    import upvid.job.run as job

    cls = job.VideoSink if sink == "video" else job.ImageSink
    real = cls._write

    def write(self, rgb, pts):
        if self.index == frame:
            if then is None:
                raise KeyboardInterrupt
            then()
        real(self, rgb, pts)

    monkeypatch.setattr(cls, "_write", write)
