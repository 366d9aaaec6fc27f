"""The parameter blocks of the native kernels, read from the library itself.

Each rule's kernel is ``int nnopt_<rule>(int dtype, int64_t n, int nthreads, const Args*)``.
Its block is declared once, in C++ (``NNOPT_RULE`` in ``cpu_rule.h``), and the library
exports what it was compiled with::

    const char* nnopt_rules();               // "sgd,adagrad,rmsprop,adam,lion"
    const char* nnopt_sgd_args_layout();     // "p:ptr,g:ptr,momentum_buffer:ptr,...,mu:f64"
    size_t nnopt_sgd_args_size();            // sizeof(sgd_args)

:func:`read` builds one ``ctypes.Structure`` per rule from its layout and holds it to the
library's size, so the Python side never restates an order that could drift (``lr`` and
``eps`` swapped on one side only would be silently wrong); call sites fill a block with
:func:`fill`, by field name only, every field given, so a misspelt or missing name fails.
"""

from __future__ import annotations

import ctypes
from functools import cache

PTR, FLAG, F64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_double
CTYPES = {"ptr": PTR, "scalar": PTR, "i32": FLAG, "f64": F64}
# The fields every block has (cpu_rule.h): the tensors, the regularization, the step count.
COMMON = ("p", "g", "l2_on", "l1_on", "lr", "step", "l2", "decay", "l1lr")


def structure(rule: str, layout: str) -> type[ctypes.Structure]:
    """The ctypes structure of ``layout`` (``name:tag`` pairs, tags ``ptr``, ``scalar``, ``i32``,
    ``f64``).

    Raises ValueError for a malformed layout, one without the common fields, or one whose
    pointers do not come first (the many-tensor kernels copy a row of pointers over them).
    """
    fields, scalars = [], []
    for entry in layout.split(","):
        name, _, tag = entry.partition(":")
        if not name.isidentifier() or tag not in CTYPES:
            raise ValueError(f"{rule}: malformed layout entry {entry!r}")
        fields.append((name, CTYPES[tag]))
        if tag == "scalar":
            scalars.append(name)
    names = [name for name, _ in fields]
    if len(set(names)) != len(names) or not set(COMMON) <= set(names):
        raise ValueError(f"{rule}: layout {layout!r} repeats a field or lacks one of {COMMON}")
    kinds = [ctype is PTR for _, ctype in fields]
    if kinds != sorted(kinds, reverse=True):
        raise ValueError(f"{rule}: layout {layout!r} has a pointer after a flag or scalar")
    return type(
        f"{rule}_args", (ctypes.Structure,), {"_fields_": fields, "_scalars_": tuple(scalars)}
    )


def read(lib: ctypes.CDLL) -> dict[str, type[ctypes.Structure]] | str:
    """Rule name -> block structure for every rule ``lib`` holds, or why they cannot be used."""
    try:
        lib.nnopt_rules.argtypes, lib.nnopt_rules.restype = [], ctypes.c_char_p
        rules = lib.nnopt_rules().decode().split(",")
    except AttributeError:
        return "the library lists no rules (nnopt_rules)"
    blocks, problems = {}, []
    for rule in rules:
        try:
            layout_fn = getattr(lib, f"nnopt_{rule}_args_layout")
            size_fn = getattr(lib, f"nnopt_{rule}_args_size")
        except AttributeError:
            problems.append(f"the library exports no layout for {rule}")
            continue
        layout_fn.argtypes, layout_fn.restype = [], ctypes.c_char_p
        size_fn.argtypes, size_fn.restype = [], ctypes.c_size_t
        try:
            block = structure(rule, layout_fn().decode())
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if size_fn() != ctypes.sizeof(block):
            problems.append(
                f"{rule}: sizeof is {size_fn()} in the library, {ctypes.sizeof(block)} in Python"
            )
            continue
        blocks[rule] = block
    if problems:
        return "parameter blocks unusable: " + "; ".join(problems)
    return blocks


def layout(block: type[ctypes.Structure]) -> str:
    """The block as ``name:tag`` pairs in order, the form the library's layout functions use."""
    tags = {F64: "f64", FLAG: "i32", PTR: "ptr"}
    scalars = scalar_names(block)
    return ",".join(
        f"{name}:{'scalar' if name in scalars else tags[ctype]}" for name, ctype in block._fields_
    )


def fill(block: type[ctypes.Structure], values: dict[str, object]) -> ctypes.Structure:
    """An instance of ``block`` with every field set by name (a missing or unknown name raises)."""
    names = _names(block)
    if values.keys() != names:
        missing, unknown = names - values.keys(), values.keys() - names
        raise TypeError(
            f"{block.__name__}: missing {sorted(missing)}, unknown {sorted(unknown)} "
            "(the kernel's fields and its NNOPT_RULE in cpu_kernels.cpp differ)"
        )
    return block(**values)


def field_names(block: type[ctypes.Structure]) -> frozenset[str]:
    """The names of the block's fields."""
    return _names(block)


@cache
def _names(block: type[ctypes.Structure]) -> frozenset[str]:
    return frozenset(name for name, _ in block._fields_)


def pointer_names(block: type[ctypes.Structure]) -> tuple[str, ...]:
    """The block's state pointers (its pointer fields after ``p`` and ``g``, scalars too), in
    order."""
    return tuple(name for name, ctype in block._fields_[2:] if ctype is PTR)


def scalar_names(block: type[ctypes.Structure]) -> tuple[str, ...]:
    """The block's pointers to one-element float32 state (``scalar(name)`` fields), in order."""
    return getattr(block, "_scalars_", ())
