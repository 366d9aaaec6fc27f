"""The compact formats and the compact step in float64, from their definitions (the reference
``tests/test_lowbit_*.py`` hold the kernels and the eager path to)."""

from __future__ import annotations

import numpy as np
import optim_references as ref
import torch
from torch import Tensor

BLOCK = 256


def code_values(signed: bool) -> torch.Tensor:
    """The value in [0, 1] of each code magnitude (0..127 signed, 0..255 unsigned), float64,
    from the definition: 2^(e - bias) (1 + m/8), or m 2^(1 - bias - 3) for e = 0."""
    bias = 15 if signed else 31
    c = torch.arange(128 if signed else 256, dtype=torch.int64)
    e, m = c >> 3, (c & 7).double()
    return torch.where(e == 0, m * 2.0 ** (1 - bias - 3), 2.0 ** (e - bias).double() * (1 + m / 8))


def decode64(codes: Tensor, scales: Tensor, signed: bool) -> Tensor:
    """x = s value(|q|) sign(q), in float64."""
    q = codes.reshape(-1).to(torch.int64)
    s = scales.double().repeat_interleave(BLOCK)[: q.numel()]
    value = code_values(signed)[q.abs()] * s * torch.where(q < 0, -1.0, 1.0).double()
    return value.view(codes.shape)


def encode64(x: Tensor, signed: bool) -> tuple[Tensor, Tensor]:
    """(codes, absmax per block) of float64 ``x``: the nearest code value to |x| / s (ties to
    the larger; n <= 1 so never above 1.0's code), a nonzero unsigned x never 0."""
    flat = x.reshape(-1).double()
    n = flat.numel()
    pad = -n % BLOCK
    blocked = torch.cat([flat, flat.new_zeros(pad)]).view(-1, BLOCK)
    s = blocked.abs().amax(dim=1)
    safe = torch.where(s > 0, s, torch.ones_like(s)).view(-1, 1)
    table = code_values(signed)
    table = table[table <= 1.0]
    target = (blocked.abs() if signed else blocked.clamp(min=0)) / safe
    # the nearest of the two codes around the target; of two equally near, the larger
    above = torch.searchsorted(table, target).clamp(max=table.numel() - 1)
    below = (above - 1).clamp(min=0)
    nearer_below = (target - table[below]) < (table[above] - target)
    q = torch.where(nearer_below, below, above).double()
    q = q * blocked.sign() if signed else torch.where((blocked > 0) & (q < 1), 1.0, q)
    return q.reshape(-1)[:n].view(x.shape), s


def code_step(q: Tensor, signed: bool) -> Tensor:
    """The larger distance from each code's value to a neighbour code's, relative to the
    scale (a value next to a rounding tie may take either code)."""
    table = code_values(signed)
    t = q.to(torch.int64).abs()
    up, down = (t + 1).clamp(max=table.numel() - 1), (t - 1).clamp(min=0)
    return torch.maximum(table[up] - table[t], table[t] - table[down])


def ulp_bf16(w: Tensor) -> Tensor:
    """The spacing of bfloat16 numbers at w (bfloat16), in float64."""
    exponent = ((w.view(torch.int16).to(torch.int32) >> 7) & 0xFF).clamp(min=1)
    return torch.ldexp(torch.ones_like(w, dtype=torch.float64), exponent - 134)


def with_residual64(w: Tensor, code: Tensor) -> Tensor:
    """The master weight of bfloat16 ``w`` and its 8-bit residual, from the definition: the
    float32 whose bits are w's shifted up 16 plus 256 code (in float64)."""
    bits = ((w.view(torch.int16).to(torch.int64) & 0xFFFF) << 16) + code.to(torch.int64) * 256
    values = (bits.numpy() & 0xFFFFFFFF).astype(np.uint32).view(np.float32)
    return torch.from_numpy(values.astype(np.float64)).view(w.shape)


# nnopt's state names -> the float64 reference rules' names, per rule.
RULES = {
    "sgd": (ref.sgd_rule, {"momentum_buffer": "b"}),
    "adagrad": (ref.adagrad_rule, {"sum": "G"}),
    "rmsprop": (ref.rmsprop_rule, {"square_avg": "E", "grad_avg": "gbar", "momentum_buffer": "b"}),
    "adam": (ref.adam_rule, {"exp_avg": "m", "exp_avg_sq": "v", "max_exp_avg_sq": "vmax"}),
}


def step64(rule: str, theta: Tensor, g: Tensor, state: dict[str, Tensor], o: dict, t: int):
    """One float64 step of ``rule`` with nnopt's regularization around it (maximize, coupled
    L2, decoupled decay, the rule, the L1 proximal step at threshold l1 lr / d): the new master
    weight and the new state, by nnopt's names."""
    fn, names = RULES[rule]
    if o.get("maximize"):
        g = -g
    if o.get("l2"):
        g = g + o["l2"] * theta
    if o.get("decoupled_weight_decay") and o.get("weight_decay"):
        theta = theta * (1 - o["lr"] * o["weight_decay"])
    s = {names[k]: v for k, v in state.items()}
    new_theta, d = fn(theta, g, s, o, t)
    if o.get("l1"):
        tau = o["l1"] * o["lr"] / d
        new_theta = new_theta.sign() * (new_theta.abs() - tau).clamp(min=0)
    back = {v: k for k, v in names.items()}
    return new_theta, {back[k]: v for k, v in s.items()}
