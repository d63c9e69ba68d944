"""Command line: ``upvid IN OUT [options]``, ``upvid models``, ``upvid bench``, ``upvid degrade``, ``upvid explain``.

One module per command; this one maps errors raised anywhere as :class:`upvid.errors.UpvidError`
to one line on stderr and the exit code of their class (see :mod:`upvid.errors`). stdout carries
only machine-readable output.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys

from upvid.cli import bench, degrade, explain, models, upscale  # noqa: F401  (register the commands)
from upvid.cli.app import COMMANDS, app
from upvid.errors import EXIT_INTERRUPTED, UpvidError

__all__ = ["app", "main"]


def _install_sigterm() -> None:
    """SIGTERM and SIGINT stop the job (as Ctrl-C): the first one raises KeyboardInterrupt, and the
    rest of a flood are ignored while the job cleans up, so no traceback is printed from a handler."""

    def handler(signum, frame):  # noqa: ARG001
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        pass


def main(argv: list[str] | None = None) -> None:
    """Console entry point: maps errors to one stderr line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] not in COMMANDS and args[0] not in ("--help", "-h", "--version"):
        args.insert(0, "upscale")  # `upvid IN OUT ...` without the subcommand word
    args = _ray_address(args)
    if args and args[0] == "--version":
        from upvid import __version__

        print(f"upvid {__version__}")
        raise SystemExit(0)
    _quiet_third_parties()
    _install_sigterm()
    try:
        rc = app(args=args, prog_name="upvid", standalone_mode=False)
        if rc == EXIT_INTERRUPTED:  # typer turns KeyboardInterrupt into Exit(130) and returns its code
            _fail("interrupted", EXIT_INTERRUPTED)
        if isinstance(rc, int) and rc:
            raise SystemExit(rc)
    except UpvidError as e:
        _fail(f"error: {e}", e.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    except SystemExit:
        raise
    except Exception as e:
        if type(e).__name__ == "Abort":  # click/typer's Ctrl-C at a prompt
            _fail("interrupted", EXIT_INTERRUPTED)
        if hasattr(e, "format_message") and isinstance(getattr(e, "exit_code", None), int):  # click/typer usage
            cmd = args[0] if args and args[0] in COMMANDS else ""
            _fail(f"usage error: {e.format_message()} (see 'upvid {cmd} --help'.)".replace("  ", " "), e.exit_code)
        if os.environ.get("UPVID_DEBUG"):
            raise
        _fail(f"internal error: {type(e).__name__}: {e} (set UPVID_DEBUG=1 for a traceback)", 1)


class _OwnLines(logging.Filter):
    """Pass upvid's own warnings; other libraries' records only from ERROR up (a failed download's
    retries, torch's UserWarnings: the error upvid raises says what went wrong, in one line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".")[0] == "upvid" or record.levelno >= logging.ERROR or bool(
            os.environ.get("UPVID_DEBUG"))


def _quiet_third_parties() -> None:
    """stderr carries upvid's lines: huggingface_hub logs through its own handler (kept to errors by
    ``HF_HUB_VERBOSITY``), its progress bars only on a terminal; Python warnings go through logging."""
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    if not sys.stderr.isatty():
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(level=logging.WARNING, format="upvid: warning: %(message)s", stream=sys.stderr)
    for h in logging.getLogger().handlers:
        if getattr(h, "stream", None) is sys.stderr and not any(isinstance(f, _OwnLines) for f in h.filters):
            h.addFilter(_OwnLines())
    logging.captureWarnings(True)


def _ray_address(args: list[str]) -> list[str]:
    """``--ray`` takes an optional address: give it ``local`` when the next word is not one
    (another option, IN/OUT, or nothing)."""
    out = list(args)
    for i, a in enumerate(out):
        if a == "--ray":
            nxt = out[i + 1] if i + 1 < len(out) else None
            looks = nxt is not None and (nxt in ("auto", "local") or nxt.startswith("ray://")
                                         or re.fullmatch(r"[\w.-]+:\d+", nxt) is not None)
            if not looks:
                out.insert(i + 1, "local")
            break
    return out


def _fail(message: str, code: int) -> None:
    """Print ``upvid: <message>`` as one line on stderr and exit with ``code``."""
    sys.stderr.write("upvid: " + " ".join(message.split()) + "\n")
    sys.stderr.flush()
    raise SystemExit(code) from None


if __name__ == "__main__":
    main()
