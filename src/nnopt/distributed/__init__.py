"""More than one process, through torch.distributed (launched by torchrun)."""

from nnopt.distributed.context import DistContext, setup
from nnopt.distributed.sharded import ShardedOptimizer

__all__ = ["DistContext", "ShardedOptimizer", "setup"]
