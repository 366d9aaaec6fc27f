"""How many CPU threads a run's tensor ops use: chosen per run, never left to torch's default.

torch starts with one intra-op thread per core. For the small models nnopt trains on a CPU,
each op has too little work to split, and the threads mostly wait for each other: on this
project's shared 2-core machine, 75 steps of the digits MLP took 0.20 s with one thread and
0.74-11 s with two; 300 steps of the MNIST-1D CNN 1.4-1.6 s against 14-57 s (with other jobs
running; `python benchmarks/threads.py` measures it side by side). A model of a million
parameters or more has ops large enough to share.
"""

from __future__ import annotations

import os

import torch

# Below this many parameters one thread is the default (see the measurements above).
SMALL_MODEL = 1_000_000


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def choose_threads(requested: int | None, parameters: int) -> int:
    """``train.threads`` if set; else 1 for a small model, else the usable cores.

    The automatic choice never exceeds torch's current setting, so a caller that has already
    given this process its share (``nnopt compare --jobs N`` sets cores / N per run) keeps it.
    """
    if requested is not None:
        return requested
    if parameters < SMALL_MODEL:
        return 1
    return max(1, min(usable_cores(), torch.get_num_threads()))


def apply_threads(requested: int | None, parameters: int) -> int:
    """Set torch's intra-op thread count for this run; return the number used."""
    threads = choose_threads(requested, parameters)
    torch.set_num_threads(threads)
    return threads
