"""How a parameter's optimizer state is stored under ``state_dtype`` and ``param_update``,
and every conversion between the forms (at the first step, at a load, in the converter).

A parameter's state in each form (``key``: each of the rule's ``state_keys``)::

    float32 / bfloat16 / float64   state[key]: a tensor of that dtype shaped like the weight
    int8                           state[key]: 8-bit codes shaped like the weight (int8 for a
                                   signed moment, uint8 for a non-negative one) and
                                   state[key + "_absmax"]: float32, one per block of 256
    param_update="kahan"           state["kahan_comp"]: the residual w_master - w, float32 with
                                   float32 state, bfloat16 with bfloat16 state, int8 (in 1/256
                                   of the weight's ulp: codes.residual_code) with 8-bit state
    param_update="stochastic"      state["rounding_seed"]: an int64 counter, drawn from torch's
                                   generator at the first step and advanced by one per step

Tensors under ``min_8bit_size`` elements (default ``SMALL``) keep float32 state (and a float32
residual), as bitsandbytes does: their bytes do not matter and 8 bits would cost accuracy.
Only moments are ever 8 bits (``SIGNED``): a state that holds weights (schedule-free's z) is
refused in 8 bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from nnopt.optim.lowbit import codes

STORAGE_OPTIONS = (
    "state_dtype",
    "param_update",
    "min_8bit_size",
)  # the receiving optimizer's, at a load
SMALL = 4096  # elements (min_8bit_size's default): smaller tensors keep float32 state, as in
# bitsandbytes (its min_8bit_size): their bytes hardly count and 8 bits would cost accuracy
ABSMAX = "_absmax"
COMP = "kahan_comp"
SEED = "rounding_seed"
# Every state that may be held in 8 bits, and whether its code is signed (a first moment)
# or unsigned (a sum or average of squares, never negative).
SIGNED = {
    "momentum_buffer": True,
    "exp_avg": True,
    "exp_avg_fast": True,
    "exp_avg_slow": True,
    "grad_avg": True,
    "exp_avg_sq": False,
    "max_exp_avg_sq": False,
    "square_avg": False,
    "sum": False,
}
_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float64: "float64"}
DTYPES = {name: dtype for dtype, name in _NAMES.items()}


def active(group: dict[str, Any]) -> bool:
    """Whether ``group`` asks for compact storage (else it steps as every other group)."""
    return group.get("state_dtype") is not None or group.get("param_update", "plain") != "plain"


@dataclass(frozen=True)
class Form:
    """One parameter's storage: ``state`` ("float32", "bfloat16", "float64" or "int8") and
    ``update`` ("plain", "stochastic" or "kahan"; plain unless the weight is bfloat16)."""

    state: str
    update: str

    @property
    def comp(self) -> str | None:
        """The Kahan residual's dtype name, or None without one."""
        if self.update != "kahan":
            return None
        return "float32" if self.state == "float64" else self.state

    @property
    def compute(self) -> torch.dtype:
        """The dtype the eager path steps in (float64 weights keep their precision)."""
        return torch.float64 if self.state == "float64" else torch.float32


def form_of(group: dict[str, Any], param: Tensor) -> Form:
    """The storage ``group``'s options give ``param``."""
    state = group.get("state_dtype") or _NAMES.get(param.dtype, "float32")
    if state == "int8" and param.numel() < group.get("min_8bit_size", SMALL):
        state = "float32"
    update = group.get("param_update", "plain") if param.dtype == torch.bfloat16 else "plain"
    return Form(state, update)


def held_in(form: Form, state: dict[str, Any], keys: tuple[str, ...]) -> bool:
    """Whether ``state`` holds exactly ``form`` (checked cheaply, on every step)."""
    if keys and (keys[0] not in state or not _key_held(state, keys[0], form)):
        return False
    comp = state.get(COMP)
    held_comp = comp is None if form.comp is None else comp is not None and _comp_ok(form, comp)
    return held_comp and ((SEED in state) == (form.update == "stochastic"))


def is_counter(seed: Any) -> bool:
    """Whether ``seed`` is a rounding seed the native kernel can read and increment in place
    (a one-element int64 CPU tensor, as :func:`conform` makes it)."""
    return (
        isinstance(seed, Tensor)
        and seed.dtype == torch.int64
        and seed.is_cpu
        and seed.numel() == 1
        and seed.is_contiguous()
    )


def _comp_ok(form: Form, comp: Tensor) -> bool:
    return comp.dtype == (torch.int8 if form.comp == "int8" else DTYPES[form.comp or "float32"])


def read(state: dict[str, Any], key: str, dtype: torch.dtype = torch.float32) -> Tensor:
    """State ``key`` as a ``dtype`` tensor, whatever form holds it (8-bit codes decoded)."""
    held = state[key]
    scales = state.get(key + ABSMAX)
    if scales is None:
        return held.to(dtype)
    return codes.decode(held, scales, signed=SIGNED[key]).to(dtype)


def write(state: dict[str, Any], key: str, value: Tensor, form: Form, like: Tensor) -> None:
    """Store ``value`` (a float tensor) as state ``key`` in ``form``, laid out like ``like``."""
    state.pop(key + ABSMAX, None)
    if form.state == "int8":
        state[key], state[key + ABSMAX] = codes.quantize(value, signed=SIGNED[key])
    else:
        state[key] = value.to(DTYPES[form.state]).reshape(like.shape).contiguous()


def master(param: Tensor, state: dict[str, Any], dtype: torch.dtype) -> Tensor:
    """The weight as ``dtype``, its Kahan residual (if the state holds one) added."""
    comp = state.get(COMP)
    if comp is not None and param.dtype == torch.bfloat16 and comp.dtype == torch.int8:
        return codes.with_residual(param.detach(), comp).to(dtype)
    value = param.detach().to(dtype, copy=True)
    if comp is not None and param.dtype == torch.bfloat16:
        value += comp.to(dtype)
    return value


def store_weight(param: Tensor, value: Tensor, state: dict[str, Any], form: Form) -> None:
    """Write the stepped master ``value`` into ``param`` as ``form.update`` says (the residual
    and the rounding counter too)."""
    if form.update == "stochastic":
        seed = int(state[SEED])
        param.copy_(codes.round_stochastic(value.float(), seed))
        state[SEED] = torch.tensor(seed + 1, dtype=torch.int64)
        return
    param.copy_(value)
    if form.update == "kahan":
        if form.comp == "int8":
            state[COMP] = codes.residual_code(value, param)
        else:
            residual = value.float() - param.float()  # exact: both float32, |r| <= ulp / 2
            state[COMP] = residual.to(DTYPES[form.comp or "float32"])


def conform(
    state: dict[str, Any],
    param: Tensor,
    keys: tuple[str, ...],
    form: Form,
    start: dict[str, Any],
) -> bool:
    """Bring ``param``'s state into ``form``: create what is missing (``start``: each key's
    initial value, a number or a float tensor), convert what another form holds (a loaded
    checkpoint, changed options), drop what the form does not keep. True if any was new."""
    fresh = False
    for key in keys:
        if key not in state and key not in start:
            continue  # (created at the first step)
        if key not in state:
            value = start[key]
            if not isinstance(value, Tensor):
                value = torch.full(param.shape, float(value), dtype=form.compute)
            write(state, key, value.to(param.device), form, param)
            fresh = True
        elif not _key_held(state, key, form):
            write(state, key, read(state, key, form.compute), form, param)
    held = state.get(COMP)
    if form.comp is None:
        state.pop(COMP, None)
    elif held is None or not _comp_ok(form, held):
        value = master(param, state, torch.float32) if held is not None else None
        state.pop(COMP, None)
        store_weight(param, value if value is not None else param.float(), state, form)
    if form.update == "stochastic" and SEED not in state:
        state[SEED] = torch.randint(0, 2**32, (), dtype=torch.int64)
    elif form.update != "stochastic":
        state.pop(SEED, None)
    return fresh


def _key_held(state: dict[str, Any], key: str, form: Form) -> bool:
    if (key + ABSMAX in state) != (form.state == "int8"):
        return False
    return form.state == "int8" or state[key].dtype == DTYPES[form.state]


def settle_loaded(opt: Any, group: dict[str, Any]) -> None:
    """After a load: each parameter's state in the form its group keeps (a compact state
    loaded by a full-precision optimizer is decoded, a full one loaded by a compact optimizer
    encoded), so that what is held never depends on where it came from."""
    keys = opt.state_keys(group)
    for param in group["params"]:
        state = opt.state.get(param)
        if not state:
            continue
        if active(group):
            conform(state, param, keys, form_of(group, param), start={})
        elif is_compact(state):
            full = expanded(state, param.dtype)
            state.clear()
            state.update(full)


def expanded(state: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    """A copy of one parameter's state in full precision (``dtype``): codes decoded, the
    residual and the rounding counter dropped (they belong to a bfloat16 weight)."""
    out = {}
    for key, value in state.items():
        if key.endswith(ABSMAX) or key in (COMP, SEED):
            continue
        if isinstance(value, Tensor) and key + ABSMAX in state:
            out[key] = read(state, key, dtype)
        elif shaped_like_weight(key, value):
            out[key] = value.to(dtype)  # (float32 state next to a bfloat16 weight)
        else:
            out[key] = value
    return out


def shaped_like_weight(key: str, value: Any) -> bool:
    """Whether a full-precision state entry is one shaped like its weight (a moment, a sum),
    not "step" or a per-tensor scalar."""
    return (
        isinstance(value, Tensor)
        and value.is_floating_point()
        and key != "step"
        and (value.dim() > 0 or key in SIGNED)
    )


def is_compact(state: dict[str, Any]) -> bool:
    """Whether a parameter's saved state holds anything of a compact form."""
    return any(k.endswith(ABSMAX) or k in (COMP, SEED) for k in state if isinstance(k, str))
