"""What the step's dispatch needs of an optimizer, and the per-group plan of one step.

``base.Optimizer`` implements :class:`Stepped`; ``dispatch`` reads only this contract, so the
two modules do not import each other (the dispatch is read top to bottom, one file).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from nnopt.optim import kernels, rules
from nnopt.optim.options import Hyper

# What nnopt's kernels take: plain tensors and parameters (not subclasses such as DTensor).
PLAIN = (Tensor, torch.nn.Parameter)


class Stepped(Protocol):
    """An optimizer as the dispatch sees it: its state, its rule and the kernels of the rule."""

    state: defaultdict
    uses_step: bool  # keeps torch's per-tensor "step" counter
    rule_reads_step: bool  # whether the rule and its kernel read that counter
    scalar_state: Mapping[str, float]  # per-tensor scalars beside "step": name -> start
    step_fields: tuple[str, ...]  # rule options written into the kernel's block every step

    @property
    def kernels(self) -> str: ...

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]: ...

    def initial_state(self, group: dict[str, Any], key: str) -> float | str: ...

    def whole_tensors(self, group: dict[str, Any]) -> bool: ...

    def start_state(self, group: dict[str, Any], param: Tensor) -> dict[str, Tensor]: ...

    def rule_options(self, group: dict[str, Any], h: Hyper) -> dict[str, Any]: ...

    def update(
        self, o: dict[str, Any], h: Hyper, param: Tensor, grad: Tensor,
        state: dict[str, Tensor], step: Any,
    ) -> rules.Divisor: ...  # fmt: skip

    def native_kernel(self, o: dict[str, Any]) -> kernels.cpu.Kernel | None: ...

    def fused_covers(self, o: dict[str, Any], h: Hyper) -> bool: ...

    def fused_supports(self, param: Tensor) -> bool: ...

    def fused(
        self, o: dict[str, Any], h: Hyper, params: list[Tensor], grads: list[Tensor],
        states: list[dict[str, Tensor]], steps: list[Tensor], first: bool,
    ) -> None: ...  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """How one param group is stepped this step, decided once (in ``dispatch.plan``).

    ``options``: the rule's own options, read from the group once (``rule_options``) and
    handed alike to the eager rule, nnopt's kernel and torch's fused call. ``native``: nnopt's
    one-pass kernel, its block filled for this step, or None where it may not run (the
    ``kernels`` mode, no kernel for these options, the library unavailable); ``fused``:
    PyTorch's fused kernel may run and computes exactly this group's update (its options,
    not yet its tensors' dtypes).
    """

    options: dict[str, Any]
    native: kernels.cpu.Prepared | None
    fused: bool
