"""Benchmarks: optimizer step time against torch.optim and the memory-bandwidth floor."""

from nnopt.bench.floor import add_bandwidth, bytes_per_param
from nnopt.bench.step import SHAPES, StepResult, run

__all__ = ["bytes_per_param", "SHAPES", "StepResult", "add_bandwidth", "run"]
