"""SOAP (Vyas et al. 2024): Adam run in the eigenbasis of Shampoo's preconditioner."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from nnopt.optim import rules
from nnopt.optim.base import Optimizer, constructor_options
from nnopt.optim.options import Hyper
from nnopt.optim.registry import check_all
from nnopt.optim.rules import soap as rule


class SOAP(Optimizer):
    """SOAP, "ShampoO with Adam in the Preconditioner's eigenbasis" (Vyas, Morwani, Zhao,
    Kwun, Shapira, Brandfonbrener, Janson & Kakade 2024, Algorithm 3).

    Shampoo keeps, per dimension k of a parameter, L_k <- beta_s L_k + (1 - beta_s) G_(k)
    G_(k)^T (L and R of a matrix). SOAP runs Adam on G' = G x_k Q_k^T, Q_k the eigenvectors
    of L_k, and rotates Adam's step back: N = (m' / (sqrt(v) + eps)) x_k Q_k. The bases are
    refreshed every ``precondition_frequency`` steps by one power iteration and a QR
    (``rules.soap``). As the authors' code (github.com/nikhilvyas/SOAP), the first step only
    builds the factors and their eigenbases (no update), Adam's bias correction is on the
    step size (eps is added to sqrt(v) uncorrected), and the weight decay is decoupled.

    Args (the authors' names and defaults):
        params: parameters or param groups.
        lr: learning rate (float or Tensor), or an nnopt schedule ``step -> lr``.
        betas: Adam's (b1, b2).
        shampoo_beta: the factors' decay beta_s; negative: the same as b2.
        eps: added to sqrt(v).
        weight_decay: decoupled, theta <- theta (1 - eta wd) (``decoupled_weight_decay=False``:
            coupled L2 instead). nnopt applies it before the step every step, as AdamW;
            the authors' code after it and from the second step on (a difference of
            O(eta^2 wd)).
        precondition_frequency: steps between refreshes of the bases.
        max_precond_dim: a dimension larger than this is left unrotated (Adam along it).
        merge_dims: merge neighbouring dimensions while their product is <= max_precond_dim
            (a conv kernel (64, 32, 3, 3) is preconditioned as (64, 288)).
        precondition_1d: rotate 1-D parameters too (by default they take Adam's step).
        normalize_grads: scale each tensor's update to unit RMS.
        correct_bias: Adam's bias correction.
        maximize, foreach: as torch's optimizers (``foreach``: a hint).
    nnopt's extras (keyword-only): ``decoupled_weight_decay``, ``l1`` (threshold
    ``l1 * eta / d``, d the inverse of the preconditioner's diagonal in theta's
    coordinates), ``l2``, ``flat`` (the memory layout only: SOAP steps each parameter in its
    own shape). The authors' ``data_format`` is left out: torch parameters are channels-first
    whatever their memory format. Factors and bases are float32 (float64 for float64
    parameters); a checkpoint loaded into bfloat16 parameters rounds them once (torch casts
    loaded state to the parameter's dtype).
    """

    uses_step = True
    whole_parameters = True  # the rule reads each parameter's shape (see base.step)

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 3e-3,
        betas: tuple[Any, Any] = (0.95, 0.95),
        shampoo_beta: float = -1,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        precondition_frequency: int = 10,
        max_precond_dim: int = 10000,
        merge_dims: bool = False,
        precondition_1d: bool = False,
        normalize_grads: bool = False,
        correct_bias: bool = True,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        decoupled_weight_decay: bool = True,
        l1: float = 0.0,
        l2: float = 0.0,
        state_dtype: str | None = None,
        param_update: str = "plain",
        min_8bit_size: int = 4096,
        flat: bool = False,
    ) -> None:
        super().__init__(params, constructor_options(locals()), flat=flat)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        if any(isinstance(p, Tensor) and p.is_complex() for p in params):
            raise ValueError("SOAP rotates real matrices: complex parameters are not supported")
        param_group["params"] = params
        super().add_param_group(param_group)

    def validate_group(self, group: dict[str, Any]) -> None:
        check_all(group, ("betas", "shampoo_beta", "eps", "precondition_frequency"))
        check_all(group, ("max_precond_dim", "merge_dims", "precondition_1d"))
        check_all(group, ("normalize_grads", "correct_bias"))

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")  # in the rotated basis, shaped like the parameter

    def rule_options(self, group: dict[str, Any], h: Hyper) -> dict[str, Any]:
        beta1, beta2 = map(float, group["betas"])
        shampoo_beta = float(group["shampoo_beta"])
        return {
            "beta1": beta1,
            "beta2": beta2,
            "shampoo_beta": shampoo_beta if shampoo_beta >= 0 else beta2,
            "eps": float(group["eps"]),
            "precondition_frequency": group["precondition_frequency"],
            "max_precond_dim": group["max_precond_dim"],
            "merge_dims": group["merge_dims"],
            "precondition_1d": group["precondition_1d"],
            "normalize_grads": group["normalize_grads"],
            "correct_bias": group["correct_bias"],
            "divisor": bool(h.l1),  # the preconditioner's diagonal, for L1 only
        }

    def update(self, o, h: Hyper, param, grad, state, step) -> rules.Divisor:
        full = self.state.get(param)
        if full is None or full.get("exp_avg") is not state["exp_avg"]:
            raise RuntimeError(
                "SOAP steps whole parameters in their own shape: it cannot update a slice "
                "of one (a sharded optimizer state or a flat segment)"
            )
        shape = tuple(param.shape)
        if o["merge_dims"] and len(shape) != 1:
            shape = rule.merged_shape(shape, o["max_precond_dim"])
        rotated = rule.rotated_dims(param.dim(), shape, o["max_precond_dim"], o["precondition_1d"])
        compute = torch.float64 if param.dtype == torch.float64 else torch.float32
        factors = _matrices(full, "factor", shape, rotated, param.device, compute)
        bases = _matrices(full, "basis", shape, rotated, param.device, compute)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        # bfloat16 state: Adam's moments computed in float32; a channels-last state tensor
        # (preserve_format) is worked on as a contiguous copy
        low = exp_avg.dtype != compute or not (
            exp_avg.is_contiguous() and exp_avg_sq.is_contiguous()
        )
        m = (exp_avg.to(compute).contiguous() if low else exp_avg).view(shape)
        v = (exp_avg_sq.to(compute).contiguous() if low else exp_avg_sq).view(shape)
        options = {k: o[k] for k in _RULE_OPTIONS}
        update, d = rules.soap_(
            grad.to(compute).reshape(shape), m, v, factors, bases, step=step, **options
        )
        if low:
            exp_avg.copy_(m.reshape(exp_avg.shape))
            exp_avg_sq.copy_(v.reshape(exp_avg_sq.shape))
        if update is not None:
            param.add_(update.reshape(param.shape).to(param.dtype), alpha=-h.lr)
        return d.reshape(param.shape) if isinstance(d, Tensor) else d

    def fused_covers(self, o, h: Hyper) -> bool:
        return False  # torch has no SOAP

    def native_kernel(self, o) -> None:
        # None: SOAP's work is matrix products, eigh and QR (torch's BLAS and LAPACK); the
        # elementwise Adam part in between is a few percent of it.
        return None


_RULE_OPTIONS = (
    "beta1",
    "beta2",
    "shampoo_beta",
    "eps",
    "precondition_frequency",
    "normalize_grads",
    "correct_bias",
    "divisor",
)


def _matrices(
    state: dict[str, Any],
    kind: str,
    shape: tuple[int, ...],
    rotated: list[bool],
    device: torch.device,
    dtype: torch.dtype,
) -> rule.Matrices:
    """The parameter's factor or basis per dimension, created (zeros) at its first step and
    kept in its state as ``factor_<k>`` / ``basis_<k>``; None for an unrotated dimension."""
    out: rule.Matrices = []
    for dim, (size, on) in enumerate(zip(shape, rotated, strict=True)):
        if not on:
            out.append(None)
            continue
        key = f"{kind}_{dim}"
        held = state.get(key)
        if held is None or held.shape != (size, size):
            held = state[key] = torch.zeros(size, size, device=device, dtype=dtype)
        elif held.dtype != dtype or held.device != device:
            held = state[key] = held.to(device=device, dtype=dtype)
        out.append(held)
    return out
