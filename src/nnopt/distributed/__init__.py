"""More than one process, through torch.distributed (launched by torchrun)."""

from nnopt.distributed.sharded import ShardedOptimizer

__all__ = ["ShardedOptimizer"]
