"""Facts about the host a speed run measures on: resident memory, CPU name, library versions."""

from __future__ import annotations

import platform
import sys
from typing import Any

import numpy as np
import torch

from upvid import __version__

MIB = 1024.0 * 1024.0


def rss_mib(key: str) -> float | None:
    """``VmHWM`` / ``VmRSS`` of this process in MiB (Linux), else ``None``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset this process's ``VmHWM`` to its current RSS (Linux >= 4.0); ``False`` if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return rss_mib("VmHWM") is not None
    except OSError:
        return False


def lifetime_peak_mib() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (MIB if sys.platform == "darwin" else 1024.0)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, Any]:
    import av

    try:
        import torchvision

        tv: str | None = torchvision.__version__
    except Exception:  # noqa: BLE001 - optional
        tv = None
    libs = getattr(av, "library_versions", {}) or {}
    codec = libs.get("libavcodec")
    return {"upvid": __version__, "torch": torch.__version__, "torchvision": tv, "av": av.__version__,
            "ffmpeg_libavcodec": ".".join(map(str, codec)) if codec else None, "numpy": np.__version__,
            "python": platform.python_version(), "cuda": torch.version.cuda if torch.cuda.is_available() else None}
