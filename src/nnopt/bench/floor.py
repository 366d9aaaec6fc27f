"""The memory floor of an optimizer step: bytes it must move over the memory bandwidth.

An optimizer step is memory-bound, so no implementation can beat
``floor = bytes_per_param * numel / bandwidth``. The bandwidth is measured in the same run as
the step, with an in-place add ``a.add_(b)`` on buffers of the same size: it reads a and b and
writes a, 12 bytes per float32 element.
"""

from __future__ import annotations

import statistics
import time

import torch

# Bytes read + written per float32 parameter by one step (4 B per tensor access):
#   Adam:         p r/w, g r, m r/w, v r/w          7 accesses = 28 B
#   SGD-momentum: p r/w, g r, buf r/w               5 accesses = 20 B
#   RMSProp:      p r/w, g r, square_avg r/w        5 accesses = 20 B
#   AdaGrad:      p r/w, g r, sum r/w               5 accesses = 20 B
BYTES_PER_PARAM = {"adam": 28, "sgd": 20, "rmsprop": 20, "adagrad": 20}
ADD_BYTES_PER_ELEMENT = 12


def median_time(fn, repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def add_bandwidth(numel: int, repeats: int = 20) -> float:
    """Bytes per second of ``a.add_(b)`` on two float32 buffers of ``numel`` elements.

    The best of ``repeats`` runs, not the median: bandwidth is a property of the machine and
    noise (other processes, a stalled thread) only ever lowers it, so the best run is the
    closest estimate, and the floor it gives is the strictest.
    """
    a, b = torch.rand(numel), torch.rand(numel)
    for _ in range(2):
        a.add_(b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a.add_(b)
        times.append(time.perf_counter() - start)
    return ADD_BYTES_PER_ELEMENT * numel / min(times)


def floor_seconds(optimizer: str, numel: int, bandwidth: float) -> float:
    """The least time a step of ``optimizer`` over ``numel`` float32 parameters can take."""
    return BYTES_PER_PARAM[optimizer] * numel / bandwidth
