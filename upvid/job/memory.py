"""Host (and CUDA) memory: what is available, what a job needs, and the early check between them."""

from __future__ import annotations

import os
from pathlib import Path

from upvid.errors import OutOfMemoryError, UsageError
from upvid.io.probe import VideoInfo


def available_memory() -> int | None:
    """Host memory upvid may use, in bytes: ``$UPVID_MAX_MEMORY`` if set, else the smallest of
    ``MemAvailable``, the cgroup limit and what the address-space limit (``ulimit -v``) leaves
    above the process's current size; ``None`` if unknown."""
    env = os.environ.get("UPVID_MAX_MEMORY")
    if env:
        try:
            value = float(env)
        except ValueError:
            value = float("nan")
        if not (0 < value < float("inf")):  # nan, inf, negative or zero
            raise UsageError(f"UPVID_MAX_MEMORY must be a positive number of bytes, got {env!r}")
        return int(value)
    vals = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    vals.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for p in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            v = Path(p).read_text().strip()
            if v.isdigit() and int(v) < 1 << 60:
                used = 0
                for q in ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes"):
                    try:
                        used = int(Path(q).read_text().strip())
                        break
                    except (OSError, ValueError):
                        continue
                vals.append(int(v) - used)
        except OSError:
            continue
    room = address_space_left()
    if room is not None:
        vals.append(room)
    return min(vals) if vals else None


def address_space_left() -> int | None:
    """Bytes ``RLIMIT_AS`` (``ulimit -v``) leaves above this process's virtual size, or ``None``
    when there is no such limit (or it cannot be read)."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY or soft < 0:
            return None
        with open("/proc/self/status") as f:
            size = next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:")), None)
    except (ImportError, OSError, ValueError):
        return None
    if size is None:
        return None
    # threads not yet started (decode, encode, torch's pool) each reserve a malloc arena and a stack
    reserve = (min(os.cpu_count() or 1, 16) + 4) * 72 * 2**20
    return max(0, soft - size - reserve)


def estimate_memory(width: int, height: int, scale: int, clip: int, queue: int, deep: bool, on_host: bool = True) -> int:
    """Bytes of host memory the streaming pipeline holds for output frames of ``(scale*width) x
    (scale*height)``: the integer frames in the output queue, the clip being converted and the
    encoder, plus (when the model runs on the CPU) the float32 output of one clip/batch and its
    normalised copy."""
    px = width * scale * height * scale * 3
    return (px * 4 * clip * 2 if on_host else 0) + px * (2 if deep else 1) * (queue + clip + 4)


def check_memory(info: VideoInfo, scale: int, clip: int, queue: int, deep: bool, device, device_clip: int | None = None) -> None:
    """Fail early, with a clear message, when the output frames cannot fit in memory.

    On CUDA the float32 output of ``device_clip`` frames (stitched tiles and their normalised
    copy) must fit in the free device memory; the host must hold the integer frames in flight.

    Raises:
        OutOfMemoryError: the estimate exceeds the available host (or CUDA) memory.
    """
    cuda = getattr(device, "type", "cpu") == "cuda"
    checks = [(estimate_memory(info.width, info.height, scale, clip, queue, deep, on_host=not cuda),
               available_memory(), "host memory", clip)]
    if cuda:
        try:
            import torch

            free, _ = torch.cuda.mem_get_info(device)
            n = device_clip or clip
            px = info.width * scale * info.height * scale * 3
            checks.append((px * 4 * n * 2, free, f"free memory on {device}", n))
        except Exception:  # noqa: BLE001
            pass
    for need, have, where, n in checks:
        if have is not None and need > have:
            raise OutOfMemoryError(
                f"{info.width}x{info.height} x{scale} -> {info.width * scale}x{info.height * scale} output frames need "
                f"about {need / 2**30:.1f} GiB for a clip of {n} frames, but only {have / 2**30:.1f} GiB of {where} "
                "is available; use a smaller --scale or --chunk"
            )
