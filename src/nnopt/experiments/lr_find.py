"""The learning-rate range test (Smith 2015, "Cyclical Learning Rates for Training Neural
Networks", section 3.3; popularized by fastai's ``lr_find`` and Lightning's tuner).

The learning rate grows exponentially from ``min_lr`` to ``max_lr`` over ``steps``
mini-batches, one optimizer step each:

    lr_i = min_lr * (max_lr / min_lr) ** (i / (steps - 1))

The loss is smoothed with a debiased exponential average,

    a_i = beta * a_{i-1} + (1 - beta) * loss_i,    s_i = a_i / (1 - beta^(i+1)),

and the sweep stops once it has diverged: s_i above 4 * min(s) *and* above where s started,
both counted from the end of the first 10% of the sweep (before that s is the mean of a few
noisy points, and a trained model's loss, 2e-4 one batch and 2.5e-3 the next, would "diverge"
at step 3). The starting level keeps the stop relative to the loss the model came with.

That average is causal, so it lags the loss: with beta = 0.98 over a 100-step sweep
(fastai's and Lightning's defaults) its steepest point sits several steps, about 0.6 decades
of lr, to the right of the loss's. The suggestions are therefore taken from a zero-phase
version, an average run forward and then backward over the sweep (as
``scipy.signal.filtfilt`` does), with a time constant of 5% of the sweep (beta = 1 - 20 / n).
Run backward, it would carry the blow-up into the minimum (on digits a loss of 0.15-0.25 read
as 0.6, its minimum moved half a decade left, min / 10 2.5x too low), so it runs only over the
curve before the diverged tail: the points up to the first, past the average's minimum, whose
loss is above the same threshold as the stop's. The suggestions: the lr where that curve falls
fastest against log(lr), searched between the trimmed start and its minimum, and the lr of
its minimum / 10; none, with the reason, when the curve is too short or does not fall.

Everything the test touches is put back afterwards: parameters, gradients, optimizer state
(schedule step and plateau included) and every RNG, so that training after an lr-find is
bitwise identical to training without it (unlike Lightning #6675 and fastai #3013).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nnopt import atomic
from nnopt.rng import rng_state, set_rng_state


@dataclass
class LRFindResult:
    """The sweep: learning rates, raw and smoothed losses, and the suggestions."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float | None
    min_over_10: float | None
    stopped_early: bool
    kept: int | None = None  # points before the diverged tail (None: all but a stopping one)
    reason: str | None = None  # why there is no suggestion, when there is none

    @property
    def usable(self) -> int:
        """How many points make the curve: those before the diverged tail."""
        if self.kept is not None:
            return self.kept
        return len(self.lrs) - 1 if self.stopped_early else len(self.lrs)

    def warn_if_no_suggestion(self) -> None:
        """A notebook's ``found.suggestion`` is None without a word otherwise."""
        if self.suggestion is None:
            warnings.warn(f"lr_find made no suggestion: {self.reason}", UserWarning, stacklevel=3)

    def plot(self, path: str | Path) -> Path:
        """Draw the sweep (loss against lr, the suggestions marked) to ``path``."""
        plot_lr_find(self, str(path))
        return Path(path)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON; a non-finite loss (the blow-up) becomes None (null)."""
        data = asdict(self)
        for key in ("losses", "smoothed"):
            data[key] = [v if math.isfinite(v) else None for v in data[key]]
        return data


def sweep_lrs(min_lr: float, max_lr: float, steps: int) -> np.ndarray:
    """The exponential schedule of the range test."""
    if not 0 < min_lr < max_lr:
        raise ValueError(f"need 0 < min_lr < max_lr, got min_lr={min_lr}, max_lr={max_lr}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    return min_lr * (max_lr / min_lr) ** (np.arange(steps) / (steps - 1))


def smooth(losses: list[float], beta: float = 0.98) -> list[float]:
    """Debiased exponential moving average: s_i = a_i / (1 - beta^(i+1))."""
    average, out = 0.0, []
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta ** (i + 1)))
    return out


def smooth_centered(losses: list[float], beta: float | None = None) -> list[float]:
    """Zero-phase smoothing: :func:`smooth` forward, then backward over the result.

    No lag: a curve's steepest point and minimum stay where they are, which the one-sided
    average (used online for the stopping rule) shifts towards larger lrs. ``beta`` defaults
    to 1 - 20 / n, a time constant of 5% of the n points (0.8 for a 100-step sweep).
    """
    if beta is None:
        beta = max(0.0, 1.0 - 20.0 / max(len(losses), 1))
    return smooth(smooth(losses, beta)[::-1], beta)[::-1]


def suggest(lrs: list[float], smoothed: list[float], trim: float = 0.1) -> float | None:
    """The lr at the steepest descent of the smoothed loss against log(lr), before its minimum.

    The first and last ``trim`` fraction of points are dropped (at the start the average is
    still settling, at the end the loss is blowing up), and so is everything after the
    smoothed minimum: once the loss diverges it jumps up and down, and a fall there is not
    a descent to train at.
    """
    n = len(smoothed)
    if n < 5:
        return None
    lo = int(n * trim)
    hi = max(lo + 1, min(n - int(n * trim), int(np.argmin(smoothed)) + 1))
    slopes = np.gradient(np.asarray(smoothed), np.log(np.asarray(lrs)))
    best = lo + int(np.argmin(slopes[lo:hi]))
    return float(lrs[best])


# The first tenth of a sweep: the average is still settling there (a mean of a few noisy
# points), so it neither stops the sweep nor sets the minimum; suggest() trims the same.
SETTLE = 0.1
# A curve has a descent to suggest from when its lowest point is below its start by 10% and
# by 3 times the batch-to-batch noise of the loss there: a trained model's loss wanders 30%
# (2e-4 to 9e-4) with no descent at all, a fresh one's falls by a hundred times its noise.
MIN_FALL, NOISE_FALLS = 0.1, 3.0


def settle_points(steps: int) -> int:
    return max(5, int(steps * SETTLE))


def divergence_threshold(average: list[float], settle: int, factor: float) -> float:
    """The loss above which the sweep has diverged: ``factor`` times the average's lowest
    value and above the average's start, both once it has settled (inf before)."""
    if len(average) < settle:
        return math.inf
    settled = average[settle - 1 :]
    return max(factor * min(settled), settled[0])


def diverged_from(losses: list[float], average: list[float], settle: int, factor: float) -> int:
    """Where the diverged tail begins: the first point, past the average's lowest, whose loss
    is above the divergence threshold (or not finite). The curve is the points before it."""
    finite = next((i for i, v in enumerate(losses) if not math.isfinite(v)), len(losses))
    if finite < settle:
        return finite
    threshold = divergence_threshold(average[:finite], settle, factor)
    lowest = settle - 1 + int(np.argmin(average[settle - 1 : finite]))
    return next((i for i in range(lowest, finite) if losses[i] > threshold), finite)


def sweep_result(
    lrs: list[float], losses: list[float], stopped_early: bool, *,
    beta: float = 0.98, factor: float = 4.0,
) -> LRFindResult:  # fmt: skip
    """The curve (the sweep less its diverged tail), smoothed zero-phase, and the
    suggestions from it, or the reason there are none."""
    n = len(losses)
    kept = diverged_from(losses, smooth(losses, beta), settle_points(n), factor)
    smoothed = smooth_centered(losses[:kept]) + [math.inf] * (n - kept)
    curve = smoothed[:kept]
    suggestion = suggest(lrs[:kept], curve)
    lowest = int(np.argmin(curve)) if curve else 0
    reason = None
    if suggestion is None:
        reason = (
            f"too few points for a suggestion ({kept}): raise steps"
            if kept == n
            else f"too few points for a suggestion ({kept} before the loss diverged at lr "
            f"{lrs[kept]:.2g}): lower min_lr or raise steps"
        )
    else:
        first = int(kept * SETTLE)
        start, noise = curve[first], float(np.std(losses[: max(first, 5)]))
        if start - curve[lowest] < max(MIN_FALL * start, NOISE_FALLS * noise):
            suggestion, reason = (
                None,
                (
                    f"the loss did not fall during the sweep (from {start:.3g} to at best "
                    f"{curve[lowest]:.3g}, batch-to-batch noise {noise:.2g}): nothing to descend. "
                    "A model already trained has no descent left: sweep a freshly built one"
                ),
            )
    return LRFindResult(
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        suggestion=suggestion,
        min_over_10=lrs[lowest] / 10 if suggestion is not None else None,
        stopped_early=stopped_early,
        kept=kept,
        reason=reason,
    )


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    next_batch: Callable[[int], tuple[Tensor, Tensor]],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    beta: float = 0.98,
    diverge_factor: float = 4.0,
) -> LRFindResult:
    """Sweep the learning rate, then restore the model, optimizer and RNGs exactly."""
    lrs = sweep_lrs(min_lr, max_lr, steps)
    saved_params = copy.deepcopy(model.state_dict())
    saved_grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    saved_rng = rng_state()
    was_training = model.training
    tried: list[float] = []
    losses: list[float] = []
    average: list[float] = []  # the debiased average, s_i above
    settle = settle_points(steps)
    stopped_early = False
    try:
        override = getattr(optimizer, "override_lr", None)
        if override is not None:
            # An nnopt optimizer's schedules and plateau controller step aside for the sweep.
            start = optimizer.step_count
            override(lambda step: float(lrs[step - start]))
        model.train()
        running = 0.0
        for i, lr in enumerate(lrs):
            for group in optimizer.param_groups:
                group["lr"] = float(lr)
            x, y = next_batch(i)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            value = loss.item()
            tried.append(float(lr))
            losses.append(value if math.isfinite(value) else math.inf)
            running = beta * running + (1 - beta) * losses[-1]
            average.append(running / (1 - beta ** (i + 1)))
            threshold = divergence_threshold(average, settle, diverge_factor)
            if not math.isfinite(average[-1]) or (i >= settle and average[-1] > threshold):
                stopped_early = True
                break
    finally:
        model.load_state_dict(saved_params)
        for p, g in zip(model.parameters(), saved_grads, strict=True):
            if g is None:
                p.grad = None
            elif p.grad is not None:
                p.grad.copy_(g)
            else:
                p.grad = g
        if getattr(optimizer, "override_lr", None) is not None:
            optimizer.override_lr(None)
        optimizer.load_state_dict(saved_optimizer)
        for group, saved in zip(optimizer.param_groups, saved_groups, strict=True):
            group.update(saved)
        set_rng_state(saved_rng)
        model.train(was_training)
    return sweep_result(tried, losses, stopped_early, beta=beta, factor=diverge_factor)


def shown_points(result: LRFindResult) -> int:
    """How many points of the sweep the plot shows: up to where the smoothed loss, past its
    minimum, climbs back above where it started, or the curve's end, and a few points more.
    Beyond that the network has blown up and the rest of the sweep is noise that would take
    the plot's width."""
    smoothed = result.smoothed[: result.usable]
    if not smoothed or not all(math.isfinite(s) for s in smoothed):
        return result.usable
    lowest = int(np.argmin(smoothed))
    for i in range(lowest, len(smoothed)):
        if smoothed[i] > smoothed[0]:
            return min(i + 3, len(smoothed))
    return min(len(smoothed) + 3, len(result.lrs))


def plot_lr_find(result: LRFindResult, path: str) -> None:
    """Loss against lr (log x axis) with the suggestions marked, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    shown = shown_points(result)
    lrs = result.lrs[:shown]
    ax.plot(lrs, result.losses[:shown], color="0.75", lw=1, label="loss")
    label = "smoothed loss (zero-phase, up to the blow-up)"
    ax.plot(lrs, result.smoothed[:shown], color="C0", lw=2, label=label)
    if result.suggestion is not None:
        ax.axvline(
            result.suggestion, color="C3", ls="--", label=f"suggested: {result.suggestion:.2e}"
        )
    if result.min_over_10 is not None:
        ax.axvline(
            result.min_over_10, color="C2", ls=":", label=f"min / 10: {result.min_over_10:.2e}"
        )
    ax.set_xscale("log")
    # Up to the point that stopped the sweep, raw losses included (they dip below the smoothed
    # curve at its minimum); the blow-up itself is cut off.
    finite = [s for s in result.smoothed[:shown] if math.isfinite(s)]
    raw = [v for v in result.losses[:shown] if math.isfinite(v)]
    if finite:
        low, high = min(finite + raw), finite[0]
        ax.set_ylim(low - 0.1 * abs(high - low), max(high, low) + 0.5 * abs(high - low) + 1e-12)
    # Plain numbers on the y axis: a trained model's flat 2.16e-4 read "1e-13 + 2.16e-4".
    ax.yaxis.get_major_formatter().set_useOffset(False)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    title = "learning-rate range test"
    if shown < len(result.lrs):
        title += f" (cut at lr {lrs[-1]:.2g}: the sweep to {result.lrs[-1]:.2g} had diverged)"
    if result.reason:  # "no suggestion: the loss did not fall during the sweep"
        title += f"\nno suggestion: {result.reason.split(' (')[0]}"
    ax.set_title(title, fontsize=11)
    # The loss starts high at small lrs and falls to the right: the lower left stays empty.
    ax.legend(loc="lower left", framealpha=0.85)
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)
    fig.tight_layout()
    atomic.save_figure(path, fig)
    plt.close(fig)
