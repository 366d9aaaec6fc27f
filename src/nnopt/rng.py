"""Capture and restore every random stream a run draws from (torch, NumPy, Python, CUDA).

The state is tensors and plain values only (NumPy's key as an int64 tensor, Python's as nested
tuples of ints), so a checkpoint that holds it loads with ``torch.load(weights_only=True)``:
an ndarray would need NumPy's pickled globals, which a safe load refuses.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """Every random stream: dropout masks, shuffles done outside the batcher, user code."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _plain_numpy(np.random.get_state(legacy=False)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` (or :func:`plain_rng_state`) returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(_numpy_state(state["numpy"]))
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def plain_rng_state(state: dict[str, Any]) -> dict[str, Any]:
    """An RNG state as nnopt wrote it before checkpoint format 4 (NumPy's key an ndarray,
    or NumPy's legacy tuple) in today's plain form; the same streams, bit for bit."""
    return {**state, "numpy": _plain_numpy(state["numpy"]), "python": _as_tuple(state["python"])}


def _plain_numpy(state: dict[str, Any] | tuple[Any, ...]) -> dict[str, Any]:
    if isinstance(state, tuple):  # np.random.get_state()'s legacy form
        name, key, pos, has_gauss, gauss = state
        state = {"bit_generator": name, "state": {"key": key, "pos": pos},
                 "has_gauss": has_gauss, "gauss": gauss}  # fmt: skip
    inner = state["state"]
    return {
        "bit_generator": str(state["bit_generator"]),
        # int64: every uint32 fits, and torch's uint32 tensors support few operations.
        "state": {
            "key": torch.as_tensor(np.asarray(inner["key"], dtype=np.int64)),
            "pos": int(inner["pos"]),
        },
        "has_gauss": int(state["has_gauss"]),
        "gauss": float(state["gauss"]),
    }


def _numpy_state(plain: dict[str, Any]) -> dict[str, Any]:
    inner = plain["state"]
    key = inner["key"]
    key = key.numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
    return {**plain, "state": {**inner, "key": key.astype(np.uint32)}}


def _as_tuple(value: Any) -> Any:
    # Python's RNG state is nested tuples; a round trip through some formats gives lists.
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value
