"""The memory floor of an optimizer step: bytes it must move over the memory bandwidth.

An optimizer step is memory-bound, so no implementation can beat
``floor = bytes_per_param * numel / bandwidth``. The bandwidth is measured in the same run as
the step, with an in-place add ``a.add_(b)`` on buffers of the same size: it reads a and b and
writes a, 12 bytes per float32 element.
"""

from __future__ import annotations

import time

import torch


def bytes_per_param(state_tensors: int, element_size: int = 4) -> int:
    """Bytes one step must read and write per parameter: p r/w, g r, each state tensor r/w.

    Adam (m, v): 7 accesses = 28 B in float32; SGD-momentum, RMSProp, AdaGrad: 5 = 20 B.
    """
    return element_size * (3 + 2 * state_tensors)


ADD_BYTES_PER_ELEMENT = 12


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


def floor_seconds(state_tensors: int, numel: int, bandwidth: float) -> float:
    """The least time a step keeping ``state_tensors`` per parameter over ``numel`` float32
    parameters can take."""
    return bytes_per_param(state_tensors) * numel / bandwidth
