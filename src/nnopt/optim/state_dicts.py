"""An nnopt optimizer's state dict: torch's, plus nnopt's step count and plateau state, loaded
from nnopt (flat or not, any number of ranks) or from torch.optim."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch
from torch import Tensor

from nnopt.optim import registry
from nnopt.optim.lowbit import forms as lowbit_forms
from nnopt.optim.options import check_options, step_dtype

# nnopt's own options: a torch.optim state dict never has them, so loading one keeps ours.
NNOPT_EXTRAS = registry.NNOPT_OWN


class StateDicts:
    """``state_dict`` and ``load_state_dict`` of :class:`nnopt.optim.base.Optimizer` (a mixin
    before ``torch.optim.Optimizer``, whose methods it extends)."""

    # (set by base.Optimizer: its groups, state, plateau controller, step count, flat layouts)
    param_groups: list[dict[str, Any]]
    state: Any
    plateau: Any
    _step_index: int
    _flat_layouts: list
    _loading: list[dict[str, Any]] | None
    _loading_scalars: tuple[list, dict] | None = None
    scalar_state: Any

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict, plus the step counter and plateau state under ``"nnopt"``.

        Schedules are code, not data: they are left out (the optimizer being loaded into
        keeps its own), so the dict loads with ``torch.load(weights_only=True)``.
        """
        state = super().state_dict()
        for group in state["param_groups"]:
            group.pop("schedule", None)
        state["nnopt"] = {
            "step": self._step_index,
            "plateau": self.plateau.state_dict() if self.plateau is not None else None,
        }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict from nnopt (flat or not, any number of ranks) or torch.optim.

        torch replaces each param group by the saved one, so every option torch saved keeps
        its meaning. Schedules are never saved, so each group keeps its own; options the saved
        group lacks (``l1``/``l2`` from torch.optim, options newer than the checkpoint) keep
        their current values. A float ``step`` (torch < 1.12) becomes a float32 tensor. The
        tensors are copied: loading another optimizer's live state dict must not tie them.
        """
        state_dict = dict(state_dict)
        state_dict["state"] = _copied(state_dict["state"])
        extra = state_dict.pop("nnopt", None)
        # torch's load_state_dict puts the loaded groups in place through __setstate__ and
        # only then runs the user's post-hooks: nnopt's fix-ups run inside __setstate__, so a
        # post-hook sees a fully loaded optimizer.
        self._loading = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        self._loading_scalars = _saved_as_is(state_dict, self.scalar_state, self._loading)
        try:
            super().load_state_dict(state_dict)
        finally:
            self._loading = self._loading_scalars = None
        if extra is not None:
            self._step_index = int(extra["step"])
            if extra.get("plateau") is not None and self.plateau is not None:
                self.plateau.load_state_dict(extra["plateau"])

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "kernels" in state:  # pickled by nnopt before ``kernels`` became a property
            state["_kernels"] = state.pop("kernels")
        super().__setstate__(state)
        for tables in ("_group_tables", "_compact_tables"):  # (checked before use; freed)
            self.__dict__.pop(tables, None)
        previous = self.__dict__.get("_loading")
        if previous is not None:
            self._finish_loading(previous)

    def _finish_loading(self, previous: list[dict[str, Any]]) -> None:
        """Options the loaded groups lack, step counters as tensors, flat state re-read."""
        torch_defaults = _signature_defaults(type(self))
        for group, before in zip(self.param_groups, previous, strict=True):
            group.pop("schedule", None)
            for key, value in before.items():
                if key == "schedule" or key not in group:
                    # An option the checkpoint predates takes the class default, as torch's
                    # __setstate__ does; nnopt's own extras keep their current values.
                    group[key] = torch_defaults.get(key, value)
            check_options(group)
            self.validate_group(group)
        for state in self.state.values():
            # torch lets state hold entries of any kind (a hook may store a flag): only a
            # per-parameter dict has a step counter (and scalars, NAdam's mu_product).
            if not isinstance(state, dict):
                continue
            for name in ("step", *self.scalar_state):
                value = state.get(name)
                if value is not None and not isinstance(value, Tensor):
                    state[name] = torch.tensor(float(value), dtype=step_dtype())
        if self._loading_scalars is not None:
            # torch casts every state tensor but "step" to its parameter's dtype (NAdam's
            # mu_product to bfloat16 with a bfloat16 parameter); a scalar is a running count
            # like "step", kept as saved, so a resumed run continues bit for bit. So is compact
            # state (8-bit codes, their float32 scales, a float32 residual or state next to a
            # bfloat16 weight): torch's cast would destroy it.
            order, saved = self._loading_scalars
            params = [p for g in self.param_groups for p in g["params"]]
            for index, p in zip(order, params, strict=False):
                kept = saved.get(index, {})
                self.state[p].update({k: v.to(p.device) for k, v in kept.items()})
        for group, before in zip(self.param_groups, previous, strict=True):
            # How the state is stored is the receiving optimizer's choice, as ``flat`` is.
            for name in lowbit_forms.STORAGE_OPTIONS:
                if name in before:
                    group[name] = before[name]
            lowbit_forms.settle_loaded(self, group)
        for layout in self._flat_layouts:
            layout.unbind_state()  # the loaded tensors are copied in at the next step


def _saved_as_is(
    state_dict: dict[str, Any], names: Any, receiving: list[dict[str, Any]]
) -> tuple[list, dict] | None:
    """The saved order of parameter ids and each one's state tensors that load as saved: its
    scalars, and all of a compact state or of one a compact group receives (None if none)."""
    compact_ids = {
        i
        for g, options in zip(state_dict["param_groups"], receiving, strict=False)
        if lowbit_forms.active(options)
        for i in g["params"]
    }
    saved = {
        index: {
            k: v
            for k, v in state.items()
            if isinstance(v, Tensor)
            and (k in names or index in compact_ids or lowbit_forms.is_compact(state))
        }
        for index, state in state_dict["state"].items()
        if isinstance(state, dict)
    }
    if not any(saved.values()):
        return None
    return [i for g in state_dict["param_groups"] for i in g["params"]], saved


def _copied(tree: Any) -> Any:
    """A copy of a state tree, each tensor cloned (a differentiable optimizer's state is not a
    graph leaf, so deepcopy refuses it; clone keeps its history, as torch's load keeps it)."""
    if isinstance(tree, Tensor):
        return tree.clone()
    if isinstance(tree, dict):
        return type(tree)((k, _copied(v)) for k, v in tree.items())
    if isinstance(tree, list | tuple):
        return type(tree)(_copied(v) for v in tree)
    return copy.deepcopy(tree)


def _signature_defaults(cls: type) -> dict[str, Any]:
    """The constructor defaults of torch's options (not nnopt's extras) of ``cls``."""
    return {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not p.empty and name not in NNOPT_EXTRAS
    }
