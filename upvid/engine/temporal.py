"""Temporal scheduling: sliding-window indices with reflect padding, recurrent clips with overlap."""

from __future__ import annotations


def reflect_index(i: int, n: int) -> int:
    """Mirror a frame index into ``[0, n)`` without repeating the edge frame (``-1 -> 1``, ``n -> n-2``).

    Args:
        i: any integer index.
        n: sequence length (>= 1).
    """
    if n == 1:
        return 0
    period = 2 * (n - 1)
    i = abs(i) % period
    return period - i if i >= n else i


def window_indices(centre: int, frames: int, n: int | None, last_known: int) -> list[int] | None:
    """Input indices of the sliding window centred on ``centre``, reflect-padded at both ends.

    Args:
        centre: output frame index.
        frames: window length ``2r + 1``.
        n: sequence length if known (the input is exhausted), else ``None``.
        last_known: highest index decoded so far.

    Returns:
        The ``frames`` indices, or ``None`` if the window needs frames not decoded yet.
    """
    r = frames // 2
    if n is None:
        if centre + r > last_known:
            return None
        return [reflect_index(j, 10**9) if j < 0 else j for j in range(centre - r, centre + r + 1)]
    return [reflect_index(j, n) for j in range(centre - r, centre + r + 1)]


def crossfade_weights(length: int) -> list[float]:
    """Weights of the *earlier* clip over an overlap of ``length`` frames (the later clip gets ``1 - w``).

    Linear, strictly inside (0, 1), so both clips contribute to every overlapping frame and the
    earlier clip dominates where the later one has least temporal context (its first frames).
    """
    return [1.0 - (k + 0.5) / length for k in range(length)]
