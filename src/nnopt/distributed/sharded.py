"""Sharded optimizer state over flat buffers (ZeRO stage 1; Rajbhandari et al. 2020).

Each of N ranks keeps the optimizer state of 1/N of every flat buffer. A step is:
    g_shard = reduce_scatter(g) / N      (the mean gradient, only the rank's own slice)
    theta_shard, state_shard <- rule(theta_shard, g_shard, state_shard)
    theta = all_gather(theta_shard)      (every rank holds the full updated parameters)
Buffers are zero-padded to a multiple of N, as FSDP does; a zero gradient on zero padding
leaves it at zero under every rule. Use it *instead of* DistributedDataParallel: the
reduce-scatter is the gradient averaging.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from nnopt.optim import lowbit
from nnopt.optim.base import Optimizer
from nnopt.optim.flat import FlatBucket
from nnopt.optim.lazy_state import new_state

# torch 2.13 renamed the single-tensor collectives (the old names warn, FutureWarning); the
# old names stay for the older torch versions pyproject.toml allows. Same arguments, same result.
_reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


class ShardedOptimizer(torch.optim.Optimizer):
    """Wrap an nnopt optimizer so that each rank keeps and updates 1/N of its state.

    A ``torch.optim.Optimizer`` itself: its ``param_groups``, ``defaults`` and ``state`` are
    the wrapped optimizer's, so torch's LR schedulers, ``GradScaler`` and code that edits
    ``param_groups`` work on it; the wrapped optimizer's options, schedules and plateau
    controller all still apply. ``state_dict()`` gathers the full, unsharded state (the same
    format as the plain optimizer's), so a checkpoint resumes on any number of ranks; every
    rank must call it. It uses only the optimizer's public seams (``pack``, ``current_lr``,
    ``update_tensor``, ``finish_step``).
    """

    def __init__(self, optimizer: Optimizer, process_group: Any = None) -> None:
        if not isinstance(optimizer, Optimizer):
            raise ValueError(
                f"ShardedOptimizer wraps nnopt optimizers, got {type(optimizer).__name__}"
            )
        if optimizer.scalar_state:
            # A per-tensor scalar (NAdam's mu_product) has no shard to live in yet.
            raise ValueError(
                f"{type(optimizer).__name__} keeps per-tensor scalars "
                f"({', '.join(optimizer.scalar_state)}) that sharded state does not hold yet: "
                "train it unsharded (DDP), or choose another optimizer for sharded state"
            )
        if getattr(optimizer, "schedule_free", False):
            raise ValueError(
                f"ShardedOptimizer cannot wrap {type(optimizer).__name__}: its per-group "
                "averaging bookkeeping and train()/eval() moves are not sharded; use it "
                "unsharded (DDP)"
            )
        whole = optimizer.whole_parameters or any(
            map(optimizer.whole_tensors, optimizer.param_groups)
        )
        if whole:
            # Its rule reads each parameter whole (a matrix, its rows and columns): a shard
            # holds a slice of a flat buffer, not whole parameters.
            raise ValueError(
                f"ShardedOptimizer cannot wrap {type(optimizer).__name__}: its rule reads each "
                "parameter whole (matrix products, row and column statistics), and a shard "
                "holds a slice of the flat buffer; use it unsharded (DDP)"
            )
        if any(map(lowbit.active, optimizer.param_groups)):
            # Compact state is stepped tensor by tensor (8-bit blocks, a residual beside each
            # bfloat16 weight); a shard holds a slice of a flat buffer.
            raise ValueError(
                f"ShardedOptimizer cannot wrap {type(optimizer).__name__} with state_dtype or "
                "param_update set: compact state is not sharded yet; use it unsharded (DDP)"
            )
        if not (dist.is_available() and dist.is_initialized()):
            raise ValueError(
                "sharded state needs a torch.distributed process group: launch with "
                "`torchrun --nproc_per_node N ...` (or call torch.distributed.init_process_group)"
            )
        # torch's constructor sets up hooks and step accounting; the groups are then the
        # wrapped optimizer's own list, so an edit through either is seen by both.
        super().__init__([torch.zeros(0)], {})
        self.optimizer = optimizer
        self.param_groups = optimizer.param_groups
        self.defaults = optimizer.defaults
        self.state = optimizer.state
        self.group = process_group
        self.rank = dist.get_rank(process_group)
        self.world = dist.get_world_size(process_group)
        self.layouts = optimizer.pack(pad_to=self.world)
        for layout in self.layouts:
            trainable_loose = [p for p in layout.loose if p.requires_grad]
            if trainable_loose:
                shape = tuple(trainable_loose[0].shape)
                raise ValueError(
                    f"a parameter of shape {shape} cannot be packed into a flat buffer "
                    "(sparse, complex or non-contiguous); sharded state needs dense tensors"
                )
            for bucket in layout.buckets:
                # Every rank starts from rank 0's parameters, as DDP ensures.
                dist.broadcast(
                    bucket.padded_param, src=_global_rank(0, process_group), group=process_group
                )
        self._shards: dict[int, dict[str, Tensor]] = {}
        self._steps: dict[int, int] = {}

    @property
    def plateau(self) -> Any:
        return self.optimizer.plateau

    @plateau.setter
    def plateau(self, value: Any) -> None:
        self.optimizer.plateau = value

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)

    def _slice(self, flat: Tensor) -> Tensor:
        size = flat.numel() // self.world
        return flat[self.rank * size : (self.rank + 1) * size]

    def _shard_state(self, group: dict[str, Any], bucket: FlatBucket) -> dict[str, Tensor]:
        key = id(bucket)
        keys = self.optimizer.state_keys(group)
        shard = self._shards.get(key)
        if shard is None or tuple(shard) != keys:
            shard = {
                k: new_state(
                    self._slice(bucket.padded_param), self.optimizer.initial_state(group, k)
                )
                for k in keys
            }
            self._shards[key] = shard
            self._steps.setdefault(key, 0)
        return shard

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        opt = self.optimizer
        if len(self.layouts) != len(opt.param_groups):
            raise RuntimeError(
                "a param group was added after sharding; build the optimizer with every "
                "group before wrapping it in ShardedOptimizer"
            )
        for group, layout in zip(opt.param_groups, self.layouts, strict=True):
            lr = opt.current_lr(group)
            for bucket in layout.buckets:
                if not bucket.is_intact():
                    raise RuntimeError(
                        "a parameter was moved out of its flat buffer (p.data= or .to()) "
                        "after sharding; move the model before building the optimizer"
                    )
                if not all(bucket.prepare()):
                    raise RuntimeError(
                        "with sharded state every parameter needs a gradient at every step "
                        "(mark unused parameters requires_grad=False)"
                    )
                grad = torch.empty_like(self._slice(bucket.padded_grad))
                _reduce_scatter(grad, bucket.padded_grad, group=self.group)
                grad.div_(self.world)
                state = self._shard_state(group, bucket)
                self._steps[id(bucket)] += 1
                param = self._slice(bucket.padded_param)
                opt.update_tensor(group, param, grad, state, self._steps[id(bucket)], lr)
                _all_gather(bucket.padded_param, param.clone(), group=self.group)
        opt.finish_step()
        return loss

    # --- state --------------------------------------------------------------------------

    def state_bytes(self) -> int:
        """Bytes of optimizer state this rank holds."""
        return sum(t.numel() * t.element_size() for s in self._shards.values() for t in s.values())

    def state_dict(self) -> dict[str, Any]:
        """The full optimizer state dict, gathered from every rank (a collective call)."""
        opt = self.optimizer
        for layout in self.layouts:
            for bucket in layout.buckets:
                shard = self._shards.get(id(bucket))
                if shard is None:
                    continue
                for key, part in shard.items():
                    full = torch.empty(bucket.padded_numel, device=part.device, dtype=part.dtype)
                    _all_gather(full, part, group=self.group)
                    bucket.hold_state(key, full[: bucket.numel], opt.state)
                if opt.uses_step:
                    for p in bucket.params:
                        opt.state[p]["step"] = torch.tensor(float(self._steps[id(bucket)]))
        state = opt.state_dict()
        for layout in self.layouts:  # the gathered copies are not kept
            for bucket in layout.buckets:
                bucket.clear_state()
        opt.state.clear()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a full state dict (written with any number of ranks) and keep this rank's shard."""
        opt = self.optimizer
        opt.load_state_dict(state_dict)
        self._shards.clear()
        for group, layout in zip(opt.param_groups, self.layouts, strict=True):
            keys = opt.state_keys(group)
            for bucket in layout.buckets:
                loaded = [opt.state.get(p, {}) for p in bucket.params]
                if not any(loaded):
                    continue
                initial = {k: opt.initial_state(group, k) for k in keys}
                bucket.bind_state(initial, opt.state, opt.uses_step, [True] * len(bucket))
                shard = {}
                for key in keys:
                    padded = torch.zeros(
                        bucket.padded_numel, device=bucket.device, dtype=bucket.dtype
                    )
                    padded[: bucket.numel] = bucket.state[key]
                    shard[key] = self._slice(padded).clone()
                self._shards[id(bucket)] = shard
                self._steps[id(bucket)] = bucket.uniform_step or 0
                bucket.clear_state()
        opt.state.clear()


def _global_rank(group_rank: int, group: Any) -> int:
    return group_rank if group is None else dist.get_global_rank(group, group_rank)
