"""The parameter blocks of the native kernels: one ``ctypes.Structure`` per rule.

Each kernel is ``int nnopt_<rule>(int dtype, int64_t n, int nthreads, const <Rule>Args*)``:
the block's ``_fields_`` below are the one description of that rule's pointers, flags and
scalars, in order (pointers ``ptr``, flags ``i32`` with 0/1, scalars ``f64``). The C++ side
declares the matching structs (``cpu_blocks.h``, one X-macro list per rule) and exports,
per block, the layout it was compiled with::

    const char* nnopt_sgd_args_layout();   // "p:ptr,g:ptr,buf:ptr,momentum_on:i32,...,l1lr:f64"
    size_t nnopt_sgd_args_size();          // sizeof(SgdArgs)

``check`` compares those with ``layout(block)`` and ``ctypes.sizeof(block)`` when the library
is loaded, so a field added, dropped, retyped, renamed or moved on one side only (``lr`` and
``eps`` swapped, say) makes the kernels unavailable instead of silently wrong. Call sites
fill a block with ``fill``, by field name only, every field given.
"""

from __future__ import annotations

import ctypes
from functools import cache

PTR, FLAG, F64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_double
TAGS = {PTR: "ptr", FLAG: "i32", F64: "f64"}


def fields(pointers: str, flags: str, scalars: str) -> list[tuple[str, type]]:
    """``_fields_`` from space-separated names: the pointers, then the flags, then the scalars."""
    groups = ((pointers, PTR), (flags, FLAG), (scalars, F64))
    return [(name, ctype) for names, ctype in groups for name in names.split()]


class SgdArgs(ctypes.Structure):
    _fields_ = fields("p g buf", "momentum_on nesterov l2_on l1_on", "lr mu l2 decay l1lr")


class AdagradArgs(ctypes.Structure):
    _fields_ = fields("p g sum", "l2_on l1_on", "lr eps l2 decay l1lr")


class RmspropArgs(ctypes.Structure):
    _fields_ = fields(
        "p g square_avg grad_avg buf",
        "centered momentum_on eps_inside_sqrt l2_on l1_on",
        "lr rho eps mu l2 decay l1lr",
    )


class AdamArgs(ctypes.Structure):
    _fields_ = fields(
        "p g exp_avg exp_avg_sq max_exp_avg_sq",
        "amsgrad l2_on l1_on",
        "lr beta1 beta2 bc1 bc2_sqrt eps l2 decay l1lr",
    )


class LionArgs(ctypes.Structure):
    _fields_ = fields("p g exp_avg", "l2_on l1_on", "lr beta1 beta2 l2 decay l1lr")


# Rule name -> block: the kernel is nnopt_<rule>, its layout nnopt_<rule>_args_layout/_size.
BLOCKS: dict[str, type[ctypes.Structure]] = {
    "sgd": SgdArgs,
    "adagrad": AdagradArgs,
    "rmsprop": RmspropArgs,
    "adam": AdamArgs,
    "lion": LionArgs,
}


def layout(block: type[ctypes.Structure]) -> str:
    """The block as ``name:tag`` pairs in order, the form the library's layout functions use."""
    return ",".join(f"{name}:{TAGS[ctype]}" for name, ctype in block._fields_)


def fill(block: type[ctypes.Structure], values: dict[str, object]) -> ctypes.Structure:
    """An instance of ``block`` with every field set by name (a missing or unknown name raises)."""
    names = _names(block)
    if values.keys() != names:
        missing, unknown = names - values.keys(), values.keys() - names
        raise TypeError(f"{block.__name__}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    return block(**values)


@cache
def _names(block: type[ctypes.Structure]) -> frozenset[str]:
    return frozenset(name for name, _ in block._fields_)


def check(lib: ctypes.CDLL, blocks: dict[str, type[ctypes.Structure]] | None = None) -> str | None:
    """Why ``lib``'s blocks differ from the Python description, or ``None`` if they all agree."""
    problems = []
    for rule, block in (BLOCKS if blocks is None else blocks).items():
        try:
            layout_fn = getattr(lib, f"nnopt_{rule}_args_layout")
            size_fn = getattr(lib, f"nnopt_{rule}_args_size")
        except AttributeError:
            problems.append(f"the library exports no layout for {rule}")
            continue
        layout_fn.argtypes, layout_fn.restype = [], ctypes.c_char_p
        size_fn.argtypes, size_fn.restype = [], ctypes.c_size_t
        native, python = layout_fn().decode(), layout(block)
        if native != python:
            problems.append(f"{rule}: library has {native!r}, Python has {python!r}")
        elif size_fn() != ctypes.sizeof(block):
            problems.append(
                f"{rule}: sizeof is {size_fn()} in the library, {ctypes.sizeof(block)} in Python"
            )
    if not problems:
        return None
    return "parameter blocks differ from kernels/blocks.py: " + "; ".join(problems)
