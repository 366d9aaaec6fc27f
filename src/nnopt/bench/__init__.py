"""Benchmarks: optimizer step time against torch.optim and the memory-bandwidth floor."""

from nnopt.bench.floor import BYTES_PER_PARAM, add_bandwidth
from nnopt.bench.step import SHAPES, StepResult, run

__all__ = ["BYTES_PER_PARAM", "SHAPES", "StepResult", "add_bandwidth", "run"]
