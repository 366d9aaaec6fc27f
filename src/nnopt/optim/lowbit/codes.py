"""The compact number formats, in PyTorch ops: the eager (and CUDA) twin of ``cpu_compact.h``.

8-bit block-wise state (Dettmers et al. 2022, arXiv 2110.02861: one float32 absmax ``s`` per
block of ``BLOCK`` elements of the flattened tensor); each element's code is a small float of
n = |x| / s in [0, 1] (an exponent and a mantissa: their dynamic quantization's idea, read off
the float's bits, so it vectorizes with no table search)::

    signed (first moments)     sign, 4 exponent bits (bias 15), 3 mantissa bits: n >= 2^-17
    unsigned (second moments)  5 exponent bits (bias 31), 3 mantissa bits: n >= 2^-33,
                               and a nonzero x never stored as 0
    value = s 2^(e - bias) (1 + m / 8), or s m 2^(1 - bias - 3) when e = 0; rounded to
    nearest, ties up: a stored value is within 1/16 of x relative

A bfloat16 weight that still learns::

    stochastic   w = round(x) up with probability (x - below(x)) / ulp, so E[w] = x
    Kahan        (w, c) stands for the master x = w + c;  w <- round(x), c <- x - w,
                 c kept float32, bfloat16, or in 8 bits: the difference of the float32 bits
                 of x and of w in units of 256, i.e. c in 1/256 of w's ulp (|c| <= ulp/2)

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


MANTISSA = 3  # bits of the 8-bit small float's mantissa
BIAS = {True: 15, False: 31}  # its exponent bias: signed (4 exponent bits), unsigned (5)


def _code(n: Tensor, bias: int) -> Tensor:
    """The small-float code of n in [0, 1] (float32): the float n 2^(bias - 127) rounded half
    up to its top 12 bits (its exponent field is the code's; below 2^(1 - bias) the float is
    subnormal, with the code's linear spacing there), as cpu_compact.h computes it."""
    scaled = (n * 2.0 ** (bias - 127)).view(torch.int32)
    return (scaled + (1 << (22 - MANTISSA))) >> (23 - MANTISSA)


def _value(code: Tensor, bias: int) -> Tensor:
    """The float32 value in [0, 1] of small-float codes (int32, >= 0)."""
    return (code << (23 - MANTISSA)).view(torch.float32) * 2.0 ** (127 - bias)


def encode(x: Tensor, scales: Tensor, signed: bool) -> Tensor:
    """``x``'s 8-bit codes given each block's absmax (int8 signed, uint8 unsigned); a block
    whose absmax is not a finite positive number stores zeros (its scale says the rest)."""
    blocked, n = _blocked(x)
    s = scales.float().view(-1, 1)
    live = (s > 0) & torch.isfinite(s)
    inv = torch.where(live, 1.0 / s, torch.zeros_like(s))
    if signed:
        c = _code(blocked.abs() * inv, BIAS[True]).clamp(max=127)
        codes = torch.where(blocked < 0, -c, c).to(torch.int8)
    else:
        x0 = blocked.clamp(min=0)
        c = _code(x0 * inv, BIAS[False]).clamp(max=255)
        codes = torch.where((x0 > 0) & (c < 1), 1, c).to(torch.uint8)  # nonzero stays > 0
    codes = torch.where(live, codes, torch.zeros_like(codes))
    return codes.reshape(-1)[:n].view(x.shape)


def decode(codes: Tensor, scales: Tensor, signed: bool) -> Tensor:
    """The float32 values of 8-bit ``codes`` with each block's absmax ``scales``."""
    flat = codes.reshape(-1).to(torch.int32)
    n = flat.numel()
    pad = blocks_of(n) * BLOCK - n
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    blocked = flat.view(-1, BLOCK)
    values = _value(blocked.abs(), BIAS[signed]) * scales.float().view(-1, 1)
    if signed:
        values = torch.where(blocked < 0, -values, values)
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


def residual_code(x: Tensor, weight: Tensor) -> Tensor:
    """The Kahan residual x - w of float32 ``x`` next to w = round(x) (bfloat16) in 8 bits:
    the difference of their float32 bits (w's shifted up 16) in units of 256, that is 1/256 of
    w's ulp, rounded half up; |x - w| <= ulp / 2, so it fits (clamped to +-127)."""
    x_bits = x.float().contiguous().view(torch.int32).to(torch.int64)
    w_bits = (weight.contiguous().view(torch.int16).to(torch.int64) & 0xFFFF) << 16
    d = ((x_bits & _MASK32) - w_bits + 2**31) % 2**32 - 2**31  # (as an int32 difference)
    return ((d + 128) >> 8).clamp(-127, 127).to(torch.int8)


def with_residual(weight: Tensor, code: Tensor) -> Tensor:
    """The float32 master: w's bits shifted up 16 plus the 8-bit residual times 256."""
    w_bits = (weight.contiguous().view(torch.int16).to(torch.int64) & 0xFFFF) << 16
    bits = (w_bits + code.to(torch.int64) * 256) & _MASK32
    as32 = torch.where(bits >= 2**31, bits - 2**32, bits).to(torch.int32)
    return as32.view(torch.float32).view(weight.shape)
