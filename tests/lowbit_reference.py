"""The compact formats and the compact step in float64, from their definitions (the reference
``tests/test_lowbit_*.py`` hold the kernels and the eager path to)."""

from __future__ import annotations

import optim_references as ref
import torch
from torch import Tensor

BLOCK = 256


def decode64(codes: Tensor, scales: Tensor, signed: bool) -> Tensor:
    """x = s (q/127)|q/127| (signed) or s (q/255)^4 (unsigned), in float64."""
    q = codes.reshape(-1).double()
    s = scales.double().repeat_interleave(BLOCK)[: q.numel()]
    t = q / (127 if signed else 255)
    value = t * t.abs() * s if signed else t**4 * s
    return value.view(codes.shape)


def encode64(x: Tensor, signed: bool) -> tuple[Tensor, Tensor]:
    """(codes, absmax per block) of float64 ``x``: q = round(127 sqrt(|x|/s)) sign(x), or
    round(255 (x/s)^(1/4)) with a nonzero x never 0; ties away from zero."""
    flat = x.reshape(-1).double()
    n = flat.numel()
    pad = -n % BLOCK
    blocked = torch.cat([flat, flat.new_zeros(pad)]).view(-1, BLOCK)
    s = blocked.abs().amax(dim=1)
    safe = torch.where(s > 0, s, torch.ones_like(s)).view(-1, 1)
    if signed:
        q = torch.floor((blocked.abs() / safe).sqrt() * 127 + 0.5).clamp(max=127) * blocked.sign()
    else:
        q = torch.floor((blocked.clamp(min=0) / safe) ** 0.25 * 255 + 0.5).clamp(max=255)
        q = torch.where((blocked > 0) & (q < 1), 1.0, q)
    return q.reshape(-1)[:n].view(x.shape), s


def code_step(q: Tensor, signed: bool) -> Tensor:
    """The larger distance from each code's value to a neighbour code's, relative to the
    scale (a value next to a rounding tie may take either code)."""
    t = q.double().abs()
    top = 127 if signed else 255
    power = 2 if signed else 4
    up, down = (t + 1).clamp(max=top), (t - 1).clamp(min=0)
    return torch.maximum(up**power - t**power, t**power - down**power) / top**power


def ulp_bf16(w: Tensor) -> Tensor:
    """The spacing of bfloat16 numbers at w (bfloat16), in float64."""
    exponent = ((w.view(torch.int16).to(torch.int32) >> 7) & 0xFF).clamp(min=1)
    return torch.ldexp(torch.ones_like(w, dtype=torch.float64), exponent - 134)


# nnopt's state names -> the float64 reference rules' names, per rule.
RULES = {
    "sgd": (ref.sgd_rule, {"momentum_buffer": "b"}),
    "adagrad": (ref.adagrad_rule, {"sum": "G"}),
    "rmsprop": (ref.rmsprop_rule, {"square_avg": "E", "grad_avg": "gbar", "momentum_buffer": "b"}),
    "adam": (ref.adam_rule, {"exp_avg": "m", "exp_avg_sq": "v", "max_exp_avg_sq": "vmax"}),
}


def step64(rule: str, theta: Tensor, g: Tensor, state: dict[str, Tensor], o: dict, t: int):
    """One float64 step of ``rule`` (decoupled decay first, as AdamW): the new master weight
    and the new state, by nnopt's names."""
    fn, names = RULES[rule]
    if o.get("decoupled_weight_decay") and o.get("weight_decay"):
        theta = theta * (1 - o["lr"] * o["weight_decay"])
    s = {names[k]: v for k, v in state.items()}
    new_theta, _ = fn(theta, g, s, o, t)
    back = {v: k for k, v in names.items()}
    return new_theta, {back[k]: v for k, v in s.items()}
