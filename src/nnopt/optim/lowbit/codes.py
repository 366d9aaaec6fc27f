"""The compact number formats, in PyTorch ops: the eager (and CUDA) twin of ``cpu_compact.h``.

8-bit block-wise state (Dettmers et al. 2022, arXiv 2110.02861: one float32 absmax ``s`` per
block of ``BLOCK`` elements of the flattened tensor) with a power compander as the non-linear
code (arithmetic, so it vectorizes; it keeps the small values a moment needs)::

    signed (first moments)    q = round(127 sqrt(|x| / s)) sign(x)    x = q |q| (s / 127^2)
    unsigned (second moments) q = round(255 (x / s)^(1/4)), q >= 1 if x > 0
                                                                        x = q^4 (s / 255^4)

A bfloat16 weight that still learns::

    stochastic   w = round(x) up with probability (x - below(x)) / ulp, so E[w] = x
    Kahan        (w, c) stands for the master x = w + c;  w <- round(x), c <- x - w,
                 c kept float32, bfloat16, or in 8 bits as round(256 c / ulp(w)) (|c| <= ulp/2)

Each function computes exactly what the native kernel computes (the same float32 operations
in the same order), so the two agree bit for bit on the same inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

BLOCK = 256  # elements per absmax block (bitsandbytes' 8-bit optimizers use 256)
_MASK32 = 0xFFFFFFFF


# --- 8-bit block-wise state ---------------------------------------------------------------


def blocks_of(n: int) -> int:
    """How many absmax blocks a tensor of ``n`` elements has."""
    return -(-n // BLOCK)


def _blocked(x: Tensor) -> tuple[Tensor, int]:
    """``x`` flattened, float32, zero-padded to whole blocks, as (blocks, BLOCK); and its size."""
    flat = x.reshape(-1).float()
    n = flat.numel()
    pad = blocks_of(n) * BLOCK - n
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return flat.view(-1, BLOCK), n


def absmax(x: Tensor) -> Tensor:
    """The float32 absmax of each block of ``x`` (NaN where a block holds a NaN)."""
    blocked, _ = _blocked(x)
    return blocked.abs().amax(dim=1) if blocked.numel() else blocked.new_zeros(0)


def encode(x: Tensor, scales: Tensor, signed: bool) -> Tensor:
    """``x``'s 8-bit codes given each block's absmax (int8 signed, uint8 unsigned); a block
    whose absmax is not a finite positive number stores zeros (its scale says the rest)."""
    blocked, n = _blocked(x)
    s = scales.float().view(-1, 1)
    live = (s > 0) & torch.isfinite(s)
    inv = torch.where(live, 1.0 / s, torch.zeros_like(s))
    if signed:
        y = torch.floor(torch.sqrt(blocked.abs() * inv) * 127.0 + 0.5).clamp(max=127.0)
        codes = torch.copysign(y, blocked).to(torch.int8)
    else:
        x0 = blocked.clamp(min=0)
        y = torch.floor(torch.sqrt(torch.sqrt(x0 * inv)) * 255.0 + 0.5).clamp(max=255.0)
        codes = torch.maximum(y, (x0 > 0).float()).to(torch.uint8)  # nonzero stays > 0
    codes = torch.where(live, codes, torch.zeros_like(codes))
    return codes.reshape(-1)[:n].view(x.shape)


def decode(codes: Tensor, scales: Tensor, signed: bool) -> Tensor:
    """The float32 values of 8-bit ``codes`` with each block's absmax ``scales``."""
    blocked, n = _blocked(codes)  # (codes are integers: exact in float32)
    if signed:
        values = blocked * blocked.abs() * (scales.float() / 16129.0).view(-1, 1)
    else:
        values = (
            (blocked * blocked) * (blocked * blocked) * (scales.float() / 4228250625.0).view(-1, 1)
        )
    return values.reshape(-1)[:n].view(codes.shape)


def quantize(x: Tensor, signed: bool) -> tuple[Tensor, Tensor]:
    """``x`` as (8-bit codes shaped like ``x``, float32 absmax per block)."""
    scales = absmax(x)
    return encode(x, scales, signed), scales


# --- bfloat16 weights -----------------------------------------------------------------------


def hash32(x: Tensor) -> Tensor:
    """The kernel's 32-bit integer hash of int64 values in [0, 2^32) (Wellons' lowbias32),
    computed in int64 without overflow: each product is split at 16 bits."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _mul32(x: Tensor, c: int) -> Tensor:
    low = x * (c & 0xFFFF)
    high = ((x * (c >> 16)) & 0xFFFF) << 16
    return (low + high) & _MASK32


def hash32_int(x: int) -> int:
    """:func:`hash32` of one Python int."""
    x &= _MASK32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _MASK32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def random_bits(n: int, seed: int, device: torch.device | str = "cpu") -> Tensor:
    """The kernel's 32 random bits of elements 0..n-1 at ``seed``: hash(hash(seed) ^ index)."""
    index = torch.arange(n, dtype=torch.int64, device=device) & _MASK32
    return hash32(index ^ hash32_int(seed))


def round_stochastic(x: Tensor, seed: int) -> Tensor:
    """``x`` (float32) to bfloat16, rounded stochastically with the kernel's bits at ``seed``."""
    flat = x.reshape(-1).float()
    bits = flat.view(torch.int32).to(torch.int64) & _MASK32
    noise = random_bits(flat.numel(), seed, x.device) & 0xFFFF
    rounded = (((bits + noise) & _MASK32) >> 16).to(torch.int32)
    rounded = torch.where(torch.isnan(flat), 0x7FC0, rounded)
    # int32 0..0xffff -> the same 16 bits as int16 (two's complement), then seen as bfloat16
    as16 = torch.where(rounded >= 0x8000, rounded - 0x10000, rounded).to(torch.int16)
    return as16.view(torch.bfloat16).view(x.shape)


def ulp(w: Tensor) -> Tensor:
    """The float32 spacing of bfloat16 numbers at each element of ``w`` (bfloat16),
    2^(e - 134) for biased exponent e, taken at e >= 8 below (|w| < 2^-119)."""
    exponent = ((w.view(torch.int16).to(torch.int32) >> 7) & 0xFF).clamp(min=8)
    return ((exponent - 7) << 23).view(torch.float32)


def inverse_ulp(w: Tensor) -> Tensor:
    """1 / :func:`ulp` (a power of two, so exact)."""
    exponent = ((w.view(torch.int16).to(torch.int32) >> 7) & 0xFF).clamp(min=8)
    return ((261 - exponent) << 23).view(torch.float32)


def encode_residual(residual: Tensor, weight: Tensor) -> Tensor:
    """A Kahan residual (float32, |c| <= ulp/2) in 8 bits: round(256 c / ulp(w)), half away."""
    y = residual * inverse_ulp(weight) * 256.0
    y = torch.copysign(torch.floor(y.abs() + 0.5), y)
    return torch.nan_to_num(y, nan=0.0).clamp(-127, 127).to(torch.int8)


def decode_residual(codes: Tensor, weight: Tensor) -> Tensor:
    """The float32 residual of 8-bit ``codes`` next to bfloat16 ``weight``."""
    return codes.float() * (ulp(weight) * (1.0 / 256.0))
