"""How numbers read in what nnopt prints: counts with their plural, values to the digit."""

from __future__ import annotations


def counted(n: int, word: str) -> str:
    """``1 seed``, ``3 seeds``: a count with its noun, plural unless it is one."""
    return f"{n} {word}{'' if n == 1 else 's'}"
