"""Muon for any model: one optimizer, Muon on the hidden matrices and AdamW on the rest.

torch's Muon takes 2-D parameters only, and its users split a model by hand (the most common
complaint about it). :func:`muon_for` makes the split from the model's modules, and
:class:`MuonAdamW` steps both halves with one ``state_dict``, one ``param_groups`` list, one
``step``; with torch's ``adjust_lr_fn="match_rms_adamw"`` (Liu et al. 2025, Moonshot: the lr
scaled by 0.2 sqrt(max(A, B)), the RMS of an AdamW update) one lr and weight decay serve both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from nnopt.optim import kernels, rules
from nnopt.optim.adam import Adam
from nnopt.optim.base import Optimizer, constructor_options
from nnopt.optim.muon import MUON_OPTIONS
from nnopt.optim.options import Hyper
from nnopt.optim.registry import check_all
from nnopt.optim.rules.muon import NS_COEFFICIENTS, NS_STEPS

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._NormBase)


@dataclass(frozen=True)
class Choice:
    """Where one parameter goes, and why (a line of the run directory's ``muon_split.txt``)."""

    name: str
    shape: tuple[int, ...]
    muon: bool
    why: str

    def line(self) -> str:
        shape = "x".join(map(str, self.shape)) or "scalar"
        return f"{self.name}\t{shape}\t{'muon' if self.muon else 'adamw'}\t{self.why}"


class MuonAdamW(Optimizer):
    """Muon on the groups with ``use_muon=True``, AdamW on the others, as one optimizer.

    Muon's groups: :class:`nnopt.Muon`'s rule (a conv kernel as its (out, in * k...) matrix);
    AdamW's: :class:`nnopt.AdamW`'s rule and kernels with betas ``adamw_betas``, eps
    ``adamw_eps``. Both take ``lr`` and the decoupled ``weight_decay``; Muon's lr is scaled
    by ``adjust_lr_fn`` ("match_rms_adamw" by default, so that one lr serves both). A group
    without ``use_muon`` is split by shape (two or more dimensions: Muon); :func:`muon_for`
    splits a model by what each parameter is (embeddings and the output head to AdamW).
    State dicts hold torch's keys: ``momentum_buffer`` for Muon's parameters, ``step``,
    ``exp_avg``, ``exp_avg_sq`` for AdamW's (a hand split of torch's Muon and AdamW).
    """

    uses_step = True  # AdamW's groups (Muon's keep no counter, as torch's)

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = 1e-7,
        ns_steps: int = NS_STEPS,
        adjust_lr_fn: str | None = "match_rms_adamw",
        adamw_betas: tuple[float, float] = (0.9, 0.95),
        adamw_eps: float = 1e-8,
        *,
        decoupled_weight_decay: bool = True,
        l1: float = 0.0,
        l2: float = 0.0,
        state_dtype: str | None = None,
        param_update: str = "plain",
        min_8bit_size: int = 4096,
        flat: bool = False,
    ) -> None:
        self.choices: list[Choice] = []  # set by muon_for
        params = _split_by_shape(params)
        super().__init__(params, constructor_options(locals()), flat=flat)

    def validate_group(self, group: dict[str, Any]) -> None:
        check_all(group, (*MUON_OPTIONS, "adamw_betas", "adamw_eps"))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if "use_muon" not in param_group:
            parts = _split_by_shape([param_group])
            if len(parts) != 1:
                raise ValueError(
                    "a param group of MuonAdamW mixes matrices and other parameters: set "
                    "use_muon=True or False in it, or add them as two groups"
                )
            param_group = parts[0]
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        if group["use_muon"]:
            for p in group["params"]:
                if p.ndim < 2:
                    raise ValueError(
                        f"use_muon=True takes matrices (2 or more dimensions), got a "
                        f"parameter of size {tuple(p.shape)}: leave it to AdamW"
                    )

    def whole_tensors(self, group: dict[str, Any]) -> bool:
        return bool(group["use_muon"])

    def start_state(self, group: dict[str, Any], param: Tensor) -> dict[str, Tensor]:
        return {"momentum_buffer": torch.zeros_like(param, memory_format=torch.preserve_format)}

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["use_muon"] else ("exp_avg", "exp_avg_sq")

    def rule_options(self, group: dict[str, Any], h: Hyper) -> dict[str, Any]:
        if group["use_muon"]:
            return {k: group[k] for k in MUON_OPTIONS}
        beta1, beta2 = group["adamw_betas"]
        return {"beta1": beta1, "beta2": beta2, "eps": group["adamw_eps"], "amsgrad": False}

    def update(self, o, h: Hyper, param, grad, state, step) -> rules.Divisor:
        if "ns_steps" in o:
            return rules.muon_(param, grad, state["momentum_buffer"], lr=h.number(h.lr), **o)
        return Adam.update(self, o, h, param, grad, state, step)  # type: ignore[arg-type]

    def fused_covers(self, o, h: Hyper) -> bool:
        return "ns_steps" not in o and Adam.fused_covers(self, o, h)  # type: ignore[arg-type]

    def fused(self, o, h: Hyper, params, grads, states, steps, first) -> None:
        Adam.fused(self, o, h, params, grads, states, steps, first)  # type: ignore[arg-type]

    def native_kernel(self, o) -> kernels.cpu.Kernel | None:
        return None if "ns_steps" in o else kernels.cpu.Kernel("adam", o)

    def split_text(self) -> str:
        """One line per parameter: name, shape, muon/adamw, why (``muon_split.txt``)."""
        if not self.choices:  # built from parameters alone: the split by shape
            self.choices = [
                Choice(f"groups[{i}].params[{j}]", tuple(p.shape), g["use_muon"],
                       "2 or more dimensions" if g["use_muon"] else "fewer than 2 dimensions")
                for i, g in enumerate(self.param_groups)
                for j, p in enumerate(g["params"])
            ]  # fmt: skip
        return "\n".join(["name\tshape\toptimizer\twhy", *(c.line() for c in self.choices)])


def _split_by_shape(params: Iterable[Any]) -> list[dict[str, Any]]:
    """Param groups with ``use_muon`` set: a group without it becomes one group of its
    matrices (2 or more dimensions) and one of the rest (either left out when empty)."""
    params = list(params)
    if params and not isinstance(params[0], dict):
        params = [{"params": params}]
    groups = []
    for group in params:
        if "use_muon" in group:
            groups.append(group)
            continue
        members = list(group["params"]) if not isinstance(group["params"], Tensor) else [
            group["params"]
        ]  # fmt: skip
        for use in (True, False):
            chosen = [p for p in members if (p.ndim >= 2) == use]
            if chosen or not members:
                groups.append({**group, "params": chosen, "use_muon": use})
            if not members:
                break
    return groups


def choose(model: nn.Module, adamw: Iterable[str] = ()) -> list[Choice]:
    """Each parameter of ``model`` to Muon or AdamW, and why.

    AdamW: embeddings (a lookup, not a linear map of the input), the output head (the last
    layer's weight: it maps features to logits, whose scale AdamW's per-coordinate steps
    suit; Jordan et al. 2024 and Liu et al. 2025 keep it on AdamW), biases, norms and every
    other parameter of fewer than two dimensions, and any parameter named or under a module
    named in ``adamw``. Muon: the other matrices, conv kernels as (out, in * k...) matrices.
    The head is the last module with a weight matrix, unless a normalization module is
    registered after it (a final norm: the head is then tied to the embedding, as in the
    character LM, or it is named in ``adamw``).
    """
    forced = tuple(adamw)
    owners: dict[int, nn.Module] = {}
    head = None
    for _, module in model.named_modules():
        for p in module.parameters(recurse=False):
            owners.setdefault(id(p), module)
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter) and weight.ndim >= 2:
            head = None if isinstance(module, nn.Embedding | nn.EmbeddingBag) else weight
        elif isinstance(module, _NORMS):
            head = None
    choices = []
    for name, p in model.named_parameters():
        owner = owners.get(id(p))
        why, muon = "", False
        if any(name == f or name.startswith(f + ".") for f in forced):
            why = "named in adamw"
        elif isinstance(owner, nn.Embedding | nn.EmbeddingBag):
            why = "embedding"
        elif p is head:
            why = "output head (the last layer's weight)"
        elif p.ndim < 2:
            if isinstance(owner, _NORMS):
                why = "norm"
            elif name.rsplit(".", 1)[-1] == "bias":
                why = "bias"
            else:
                why = f"not a matrix ({p.ndim} dimensions)"
        elif p.ndim == 2:
            why, muon = "hidden matrix", True
        else:
            rows, cols = p.shape[0], p[0].numel()
            why, muon = f"conv kernel, as a {rows}x{cols} matrix", True
        choices.append(Choice(name, tuple(p.shape), muon, why))
    return choices


def assign(model: nn.Module, groups: list[dict[str, Any]], adamw: Iterable[str] = ()
           ) -> tuple[list[dict[str, Any]], list[Choice]]:  # fmt: skip
    """``groups`` (of ``model``'s parameters, e.g. ``nnopt.param_groups``'s decay split)
    each split in two by :func:`choose`: its Muon part and its AdamW part."""
    choices = choose(model, adamw)
    by_param = {id(p): c.muon for (_, p), c in zip(model.named_parameters(), choices, strict=True)}
    out = []
    for group in groups:
        for use in (True, False):
            chosen = [p for p in group["params"] if by_param.get(id(p), p.ndim >= 2) == use]
            if chosen:
                out.append({**group, "params": chosen, "use_muon": use})
    return out, choices


def muon_for(
    model: nn.Module,
    lr: Any = 1e-3,
    weight_decay: float = 0.1,
    momentum: float = 0.95,
    *,
    adamw_betas: tuple[float, float] = (0.9, 0.95),
    adamw_eps: float = 1e-8,
    adamw: Iterable[str] = (),
    **options: Any,
) -> MuonAdamW:
    """One optimizer for ``model``: Muon on its hidden matrices (conv kernels as matrices),
    AdamW on embeddings, the output head, biases, norms and the rest (see :func:`choose`;
    ``adamw``: parameter or module names to leave to AdamW too), at one ``lr`` and
    ``weight_decay`` with Muon's lr matched to AdamW's update RMS. ``options``: the rest of
    :class:`MuonAdamW`'s (nesterov, ns_steps, adjust_lr_fn, l1, flat...). The split chosen is
    ``optimizer.choices`` (and ``optimizer.split_text()``)."""
    groups, choices = assign(model, [{"params": list(model.parameters())}], adamw)
    opt = MuonAdamW(groups, lr, weight_decay, momentum, adamw_betas=adamw_betas,
                    adamw_eps=adamw_eps, **options)  # fmt: skip
    opt.choices = choices
    return opt
