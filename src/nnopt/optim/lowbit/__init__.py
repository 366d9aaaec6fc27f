"""Fewer bytes per parameter: bfloat16 weights that still learn, optimizer state in bfloat16
or 8 bits. Every nnopt optimizer takes two keyword-only options:

- ``state_dtype``: None (the weight's dtype, as torch.optim), "float32", "bfloat16" or "int8"
  (8-bit block-wise moments: one float32 absmax per block of 256, a power-law code; tensors
  under 4,096 elements keep float32 state);
- ``param_update``: how a bfloat16 weight takes its update: "plain" (rounded to nearest: an
  update under half a bfloat16 ulp is lost), "kahan" (a residual kept in the state carries
  what rounding dropped: the weight behaves as a ~16-bit-mantissa master) or "stochastic"
  (rounded up or down at random, unbiased: small updates survive on average, no extra bytes).

``forms.py`` says how the state is held, ``codes.py`` the number formats, ``step.py`` the
step; ``convert.py`` turns a full-precision state (torch.optim's or nnopt's) into the compact
form and back, and measures bytes per parameter.
"""

from __future__ import annotations

from nnopt.optim.lowbit.convert import bytes_per_param, to_compact, to_full
from nnopt.optim.lowbit.forms import active

__all__ = ["active", "bytes_per_param", "to_compact", "to_full"]
