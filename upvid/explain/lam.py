"""Local Attribution Maps (LAM) for video SR models.

Gu and Dong, "Interpreting Super-Resolution Networks with Local Attribution Maps", CVPR 2021
(X-Lowlevel-Vision/LAM_Demo). For an output patch, LAM asks which input pixels its detail
comes from:

- the **objective** ``D`` is the patch's gradient magnitude, ``sum sqrt(dy^2 + dx^2)`` over the
  patch (:func:`gradient_objective`, LAM's ``attr_grad``): edges and texture, what SR adds;
- the **path** runs from a blurred input (Gaussian, ``sigma``, an ``l x l`` kernel: LAM's
  ``GaussianBlurPath(sigma=1.2, fold=50, l=9)``) to the input itself, the blur's ``sigma``
  falling linearly to 0 in ``steps`` steps (:func:`blur_path`);
- the **attribution** is the path integral of ``dD/dx`` times the path's derivative, a right
  Riemann sum over the steps (LAM's ``Path_gradient`` + ``saliency_map_PG``). It sums to
  ``D(x) - D(blurred x)`` up to the integration error (completeness, checked in the tests);
- the **map** is ``|sum over channels|`` of the attribution, normalised by its maximum
  (``grad_abs_norm``), and the **diffusion index** ``(1 - Gini(map)) * 100``: how spread out
  the used pixels are.

For video the input is a span of LR frames ``(T, 3, H, W)`` and the map covers every frame:
its per-frame sums give the **frame share**, how far in time the model really looks. Frames a
model never reads (outside a sliding window, or all but the current one for per-frame SR) are
not in the autograd graph, so their share is exactly zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from upvid.errors import UsageError


def gaussian_kernel(size: int, sigma: float, epsilon: float = 1e-5) -> Tensor:
    """LAM's ``isotropic_gaussian_kernel``: ``(size, size)`` float64 summing to 1 (``sigma = 0``: a delta)."""
    ax = torch.arange(-(size // 2), size // 2 + 1, dtype=torch.float64)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    k = torch.exp(-(xx ** 2 + yy ** 2) / (2 * (sigma + epsilon) ** 2))
    return k / k.sum()


def _filter(x: Tensor, kernel: Tensor) -> Tensor:
    """``(T, C, H, W)`` filtered per channel with ``kernel``, reflect-101 borders (cv2.filter2D's default)."""
    t, c, h, w = x.shape
    p = kernel.shape[-1] // 2
    y = F.pad(x.reshape(t * c, 1, h, w), (p, p, p, p), mode="reflect")
    return F.conv2d(y, kernel.to(x.dtype)[None, None]).view(t, c, h, w)


def blur_path(lr: Tensor, sigma: float = 1.2, steps: int = 50, kernel: int = 9) -> tuple[Tensor, Tensor]:
    """The progressive-blur path and its derivative (LAM's ``GaussianBlurPath``).

    Args:
        lr: ``(T, C, H, W)`` float LR frames in [0, 1], ``H, W > kernel // 2``.
        sigma: the blur of the path's start (the baseline), in LR pixels.
        steps: integration steps.
        kernel: blur kernel size (odd).

    Returns:
        ``(images, derivatives)``, each ``(steps, T, C, H, W)`` float64: ``images[i]`` is ``lr``
        blurred with ``sigma * (1 - (i+1)/steps)``, ``derivatives[i] = steps * (images[i] - image
        of step i-1)`` (the step before the first is the baseline, blurred with ``sigma``).

    Raises:
        UsageError: frames too small for the kernel, or a non-positive ``steps``/``sigma``.
    """
    if steps < 1 or sigma <= 0 or kernel < 3 or kernel % 2 == 0:
        raise UsageError(f"explain: steps >= 1, sigma > 0 and an odd kernel >= 3 needed, got {steps}, {sigma}, {kernel}")
    if min(lr.shape[-2:]) <= kernel // 2:
        raise UsageError(f"explain: frames of {lr.shape[-1]}x{lr.shape[-2]} px are too small for a {kernel}-px blur")
    x = lr.double()
    sigmas = np.linspace(sigma, 0.0, steps + 1)
    blurred = [_filter(x, gaussian_kernel(kernel, float(s))) for s in sigmas]
    images = torch.stack(blurred[1:])
    derivatives = torch.stack([(blurred[i + 1] - blurred[i]) * steps for i in range(steps)])
    return images, derivatives


def gradient_objective(sr: Tensor, x: int, y: int, size: int) -> Tensor:
    """LAM's ``attr_grad``: the gradient magnitude summed over a ``size x size`` patch at ``(x, y)``.

    Args:
        sr: ``(C, H, W)`` float HR frame.
        x, y: the patch's top-left corner (HR px).
        size: the patch's side (HR px).

    Returns:
        A scalar tensor (differentiable).
    """
    dy = (sr[:, :-1, :] - sr[:, 1:, :]) ** 2
    dx = (sr[:, :, :-1] - sr[:, :, 1:]) ** 2
    grad = torch.sqrt(dy[:, :, :-1] + dx[:, :-1, :] + 1e-12)  # LAM: pow(h_grad + w_grad, 1/2)
    return grad[:, y:y + size, x:x + size].sum()


def gini(values: np.ndarray) -> float:
    """The Gini coefficient of non-negative ``values`` (any shape): 0 all equal, 1 all in one.

    LAM's ``gini``: values shifted to be non-negative, 1e-7 added, sorted.
    """
    a = np.sort(values.astype(np.float64).ravel())
    if a.size == 0:
        return 0.0
    if a[0] < 0:
        a = a - a[0]
    a = a + 1e-7
    n = a.size
    index = np.arange(1, n + 1)
    return float(np.sum((2 * index - n - 1) * a) / (n * np.sum(a)))


def diffusion_index(heat: np.ndarray) -> float:
    """LAM's diffusion index ``(1 - Gini(heat)) * 100`` of a normalised attribution map."""
    return (1.0 - gini(heat)) * 100.0


@dataclass(frozen=True)
class Attribution:
    """The result of :func:`local_attribution`.

    Attributes:
        attribution: ``(T, C, H, W)`` float64 path-integrated gradients over the LR frames.
        heat: ``(T, H, W)`` float64 in [0, 1]: ``|sum over C|`` of ``attribution``, over its maximum.
        frame_share: per input frame, its share of ``heat`` (sums to 1; exactly 0 for unread frames).
        diffusion_index: ``(1 - Gini(heat)) * 100`` over all frames' pixels.
        objective: ``D`` at the input.
        baseline_objective: ``D`` at the path's start (the input blurred with ``sigma``).
        attribution_sum: the sum of ``attribution`` (completeness: close to ``objective - baseline_objective``).
        steps, sigma, kernel: the path.
    """

    attribution: Tensor
    heat: np.ndarray
    frame_share: list[float]
    diffusion_index: float
    objective: float
    baseline_objective: float
    attribution_sum: float
    steps: int
    sigma: float
    kernel: int

    @property
    def completeness_error(self) -> float:
        """``|attribution_sum - (objective - baseline_objective)|``: the integration error."""
        return abs(self.attribution_sum - (self.objective - self.baseline_objective))


def local_attribution(fn: Callable[[Tensor], Tensor], lr: Tensor, patch: tuple[int, int, int], *, sigma: float = 1.2,
                      steps: int = 50, kernel: int = 9, progress: Callable[[int, int], None] | None = None) -> Attribution:
    """LAM of one output patch over a span of LR frames.

    Args:
        fn: ``(T, 3, H, W)`` float32 LR frames in [0, 1] -> ``(3, sH, sW)`` the output frame
            explained (differentiable; e.g. the model on the window of that frame).
        lr: ``(T, 3, H, W)`` float LR frames in [0, 1].
        patch: ``(x, y, size)`` of the HR patch in ``fn``'s output (px).
        sigma, steps, kernel: the blur path (LAM's defaults 1.2, 50, 9).
        progress: called with ``(step, steps)`` after each step.

    Returns:
        The :class:`Attribution`.

    Raises:
        UsageError: the patch is not inside the output, or a bad path (see :func:`blur_path`).
    """
    images, derivatives = blur_path(lr, sigma, steps, kernel)
    device = lr.device
    x, y, size = patch

    def objective(inp: Tensor, need_grad: bool) -> tuple[float, Tensor | None]:
        inp = inp.float().to(device).requires_grad_(need_grad)
        with torch.enable_grad() if need_grad else torch.no_grad():
            sr = fn(inp)
            if sr.ndim != 3 or not (0 <= x and 0 <= y and x + size <= sr.shape[-1] - 1 and y + size <= sr.shape[-2] - 1):
                raise UsageError(f"explain: the {size}-px patch at ({x}, {y}) is not inside the "
                                 f"{sr.shape[-1]}x{sr.shape[-2]} output (less its last row and column)")
            d = gradient_objective(sr, x, y, size)
            if not need_grad:
                return float(d.detach()), None
            (g,) = torch.autograd.grad(d, inp, allow_unused=True)
        return float(d.detach()), (torch.zeros_like(inp) if g is None else g)

    total = torch.zeros(lr.shape, dtype=torch.float64)
    value = 0.0
    for i in range(steps):
        value, g = objective(images[i], True)
        total += g.double().cpu() * derivatives[i]
        if progress is not None:
            progress(i + 1, steps)
    attribution = total / steps
    baseline, _ = objective(_filter(lr.double(), gaussian_kernel(kernel, sigma)), False)
    heat = attribution.sum(dim=1).abs().numpy()
    peak = heat.max()
    heat = heat / peak if peak > 0 else heat
    per_frame = heat.reshape(heat.shape[0], -1).sum(axis=1)
    share = (per_frame / per_frame.sum()).tolist() if per_frame.sum() > 0 else [0.0] * heat.shape[0]
    return Attribution(attribution=attribution, heat=heat, frame_share=[float(s) for s in share],
                       diffusion_index=diffusion_index(heat), objective=value, baseline_objective=baseline,
                       attribution_sum=float(attribution.sum()), steps=steps, sigma=sigma, kernel=kernel)


def frame_reach(share: list[float], centre: int) -> float:
    """The attribution-weighted mean distance in frames from ``centre``: how far in time a model looks."""
    return float(sum(s * abs(i - centre) for i, s in enumerate(share)))


__all__ = ["Attribution", "blur_path", "diffusion_index", "frame_reach", "gaussian_kernel", "gini",
           "gradient_objective", "local_attribution"]

