"""What a checkpoint holds besides tensors and plain values, found without running any of it.

nnopt loads checkpoints with ``torch.load(weights_only=True)``, which refuses any pickled
function or class outside torch's allowlist: a file from elsewhere can carry a pickle that
calls ``os.system`` as it loads. When that load refuses a file, this module names what the
file would have called, read statically from its pickle opcodes, so the refusal can say what
was found (a planted call, or the NumPy arrays of a checkpoint from an older nnopt).
"""

from __future__ import annotations

import io
import pickletools
import re
from pathlib import Path
from typing import cast

import torch

# The globals an ndarray pickles to: all a checkpoint of nnopt before format 4 holds beyond
# torch's allowlist (NumPy's RNG key). ``numpy.core`` is NumPy 1's name of ``numpy._core``.
NUMPY_ARRAY = frozenset({
    "numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct",
    "numpy.ndarray", "numpy.dtype",
})  # fmt: skip
# Modules that are os under another name (a pickle records where a function was defined).
_OS_ALIASES = {"posix": "os", "nt": "os"}
_IN_MESSAGE = re.compile(r"GLOBAL ([\w.]+)")


def unsafe_globals(source: Path | bytes, error: Exception) -> list[str]:
    """The pickled functions and classes in a file (or its bytes) that ``torch.load`` refused
    with ``error`` under ``weights_only=True``; empty when none can be named (a damaged file,
    or no pickle at all)."""
    data = source if isinstance(source, bytes) else None
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(
            io.BytesIO(source) if isinstance(source, bytes) else source
        )
    except Exception:  # not a zip that torch.save wrote: a bare pickle, torch's legacy format
        data = source if isinstance(source, bytes) else source.read_bytes()
        found = [name for name in _scan(data) if not _torch_allows(name)]
    if not found:  # the static read missed it (say, a name computed while loading)
        found = _IN_MESSAGE.findall(str(error))
    return list(dict.fromkeys(found))


def is_old_nnopt(found: list[str]) -> bool:
    """Only NumPy arrays: what nnopt wrote before checkpoint format 4."""
    return bool(found) and all(name in NUMPY_ARRAY for name in found)


def describe(found: list[str]) -> str:
    """``a pickled os.system call`` (one), or ``pickled calls to A, B`` (several)."""
    names = [_readable(name) for name in found if name not in NUMPY_ARRAY] or found
    if len(names) == 1:
        return f"a pickled {names[0]} call"
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"pickled calls to {shown}"


def _readable(name: str) -> str:
    module, _, attribute = name.rpartition(".")
    return f"{_OS_ALIASES.get(module, module)}.{attribute}" if module else name


def _torch_allows(name: str) -> bool:
    try:  # (what torch's get_unsafe_globals_in_checkpoint reads, for a file it does not)
        from torch._weights_only_unpickler import _get_allowed_globals, _get_user_allowed_globals
    except ImportError:
        return name.startswith("torch.")
    if name in _get_allowed_globals():
        return True
    return name in _get_user_allowed_globals()  # type: ignore[no-untyped-call]


def _scan(data: bytes) -> list[str]:
    """Every global the pickles in ``data`` name (torch's legacy format is several pickles
    in a row), read from the opcodes: nothing is imported or called."""
    found: list[str] = []
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        # STACK_GLOBAL (protocol 4) takes module and name from the stack, where they were
        # pushed as strings, directly or from the memo; other pushes are tracked as None.
        recent: list[str | None] = []
        memo: dict[int, str | None] = {}
        try:
            for op, arg, _ in pickletools.genops(stream):
                if op.name == "GLOBAL" or op.name == "INST":
                    found.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL":
                    if len(recent) >= 2 and None not in recent[-2:]:
                        found.append(f"{recent[-2]}.{recent[-1]}")
                elif op.name == "MEMOIZE":
                    memo[len(memo)] = recent[-1] if recent else None
                elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[int(cast(int, arg))] = recent[-1] if recent else None
                elif op.name in ("GET", "BINGET", "LONG_BINGET"):
                    recent.append(memo.get(int(cast(int, arg))))
                elif op.name != "FRAME":
                    recent.append(arg if isinstance(arg, str) else None)
        except Exception:  # damaged, or past the pickles: what was read so far
            return found
    return found
