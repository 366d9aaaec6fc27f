"""The configurations: PyTorch's own ``optim_db`` entries for the drop-in optimizers.

``optim_db`` (``torch.testing._internal.common_optimizers``, shipped in the torch wheel) lists,
per optimizer, the keyword sets PyTorch tests it with (``optim_inputs_func``), the
implementations it has (foreach, fused, differentiable), its error inputs and a few facts.
Importing it costs ~13 s (it pulls in the OpInfo database), so what the suite needs is kept
as plain data in pytest's cache, keyed by the torch version and that file's contents; a fresh
checkout pays the import once.

A :class:`Config` is one optim_db input (optimizer name + kwargs, with an optional
implementation flag); a :class:`Case` is a config in one nnopt layout (``flat`` False/True),
kernel mode, dtype and device, with the test id ``<Optimizer>-<desc>[-impl]-<layout>-<kernels>``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib.util
import inspect
import os
import pickle
import re
import sys
import types
import unittest
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

OPTIMIZERS = ("SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "NAdam", "RAdam")
LAYOUTS = {"loose": False, "flat": True}
# make test runs the default path ("auto") and the reference ("eager") in both layouts;
# `make test-torch-suite` (NNOPT_SUITE_KERNELS=all, run by CI) adds nnopt's native kernels
# and PyTorch's fused-or-eager mode: every layout x kernel mode, kept out of make test's
# five minutes.
KERNELS = ("auto", "eager") + (
    ("native", "torch") if os.environ.get("NNOPT_SUITE_KERNELS") == "all" else ()
)
HAS_CUDA = torch.cuda.is_available()
DEVICES = ("cpu", "cuda") if HAS_CUDA else ("cpu",)

# Implementation flags (torch's "global cliquey" kwargs) each config is also run with.
IMPLS = ("foreach", "forloop", "fused")
UNHONOURED = {
    "capturable": "nnopt cannot honour capturable=True on CPU (a CUDA-graph option)",
}

SCHEMA = 3  # of the cached data: bump when _extract changes
_cache: Any = None  # pytest's config.cache, set by conftest.py


def set_cache(cache: Any) -> None:
    global _cache
    _cache = cache


# --- reading optim_db ---------------------------------------------------------------------


def _import_optim_db():
    # torch.testing._internal.common_utils imports expecttest (a dev-only package of PyTorch)
    # for its TestCase base class; nothing the configurations need uses it.
    if "expecttest" not in sys.modules and importlib.util.find_spec("expecttest") is None:
        stub = types.ModuleType("expecttest")
        stub.TestCase = unittest.TestCase
        sys.modules["expecttest"] = stub
    from torch.testing._internal.common_optimizers import optim_db

    return optim_db


def _extract(device: str) -> dict[str, Any]:
    """What the suite needs from optim_db, as picklable plain data."""
    data: dict[str, Any] = {}
    for info in _import_optim_db():
        name = info.optim_cls.__name__
        if name not in OPTIMIZERS:
            continue
        inputs = [
            (i.desc, dict(i.kwargs)) for i in info.optim_inputs_func(device=device, dtype=None)
        ]
        errors = []
        for e in info.optim_error_inputs_func(device=device, dtype=torch.float32):
            oi = e.optimizer_error_input
            errors.append(
                (oi.desc, oi.params, dict(oi.kwargs), e.error_on.name, e.error_type, e.error_regex)
            )
        data[name] = dict(
            inputs=inputs,
            errors=errors,
            supported_impls=tuple(info.supported_impls),
            supports_complex=bool(info.supports_complex),
            supports_sparse=bool(info.supports_sparse),
            has_capturable_arg=_has_capturable_arg(info),
            supports_fused_on=tuple(info.supports_fused_on),
            # torch's sparse-gradient test runs these kwargs (its schedulers are left out)
            sparse_kwargs=dict(info.metadata_for_sparse[0]) if info.supports_sparse else None,
        )
    return data


def _has_capturable_arg(info: Any) -> bool:
    """optim_db's fact, or (torch < 2.5, whose OptimizerInfo lacks the field) what it states:
    the constructor takes ``capturable``."""
    if hasattr(info, "has_capturable_arg"):
        return bool(info.has_capturable_arg)
    return "capturable" in inspect.signature(info.optim_cls.__init__).parameters


def _source_key(device: str) -> str:
    spec = importlib.util.find_spec("torch.testing._internal.common_optimizers")
    digest = hashlib.sha1(open(spec.origin, "rb").read()).hexdigest()[:16]  # noqa: SIM115
    return f"nnopt/torch_suite/optim_db/v{SCHEMA}/{torch.__version__}/{digest}/{device}"


def load_optim_db(device: str) -> dict[str, Any]:
    key = _source_key(device)
    if _cache is not None:
        blob = _cache.get(key, None)
        if blob is not None:
            try:
                return pickle.loads(base64.b64decode(blob))
            except Exception:  # a stale or foreign cache entry: rebuild it
                pass
    data = _extract(device)
    if _cache is not None:
        _cache.set(key, base64.b64encode(pickle.dumps(data)).decode())
    return data


# --- configurations -----------------------------------------------------------------------


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


@dataclass(frozen=True)
class Config:
    """One optim_db input of one optimizer, optionally with an implementation flag."""

    name: str
    desc: str
    base_kwargs: dict[str, Any] = field(hash=False, compare=False)
    facts: dict[str, Any] = field(hash=False, compare=False, repr=False)
    device: str = "cpu"
    impl: str | None = None

    @property
    def id(self) -> str:
        return f"{self.name}-{slug(self.desc)}" + (f"-{self.impl}" if self.impl else "")

    @property
    def torch_cls(self) -> type[torch.optim.Optimizer]:
        return getattr(torch.optim, self.name)

    def kwargs(self, **override: Any) -> dict[str, Any]:
        """A fresh copy of the kwargs (a Tensor lr is never shared between optimizers)."""
        kwargs = copy.deepcopy(self.base_kwargs)
        if self.impl:
            kwargs.update(IMPL_KWARGS[self.impl])
        kwargs.update(copy.deepcopy(override))
        return kwargs

    @property
    def unhonoured(self) -> str | None:
        """Why nnopt cannot run this config (it must refuse it), or None."""
        if self.impl == "capturable" and self.device == "cpu":
            return UNHONOURED["capturable"]
        return None

    @property
    def maximize(self) -> bool:
        return bool(self.base_kwargs.get("maximize", False))

    @property
    def tensor_lr(self) -> bool:
        return isinstance(self.base_kwargs.get("lr"), torch.Tensor)

    @property
    def weight_decay(self) -> float:
        """The effective weight_decay (AdamW decays by default)."""
        default = 1e-2 if self.name == "AdamW" else 0.0
        return float(self.base_kwargs.get("weight_decay", default))


IMPL_KWARGS = {
    "foreach": {"foreach": True},
    "forloop": {"foreach": False},
    "fused": {"fused": True},
    "differentiable": {"differentiable": True},
    "capturable": {"capturable": True},
}


def all_configs(device: str = "cpu") -> list[Config]:
    """Every optim_db input of the drop-in optimizers, as PyTorch lists them."""
    data = load_optim_db(device)
    return [
        Config(name, desc, kwargs, data[name], device)
        for name in OPTIMIZERS
        for desc, kwargs in data[name]["inputs"]
    ]


def default_configs(device: str = "cpu") -> list[Config]:
    """One config per optimizer (its defaults), for properties about mechanisms, not math."""
    return [c for c in all_configs(device) if c.desc == "default"]


def sparse_configs(device: str = "cpu") -> list[Config]:
    """optim_db's sparse-gradient configuration, for the optimizers that take sparse grads."""
    data = load_optim_db(device)
    return [
        Config(name, "sparse", data[name]["sparse_kwargs"], data[name], device)
        for name in OPTIMIZERS
        if data[name]["sparse_kwargs"] is not None
    ]


def impl_configs(device: str = "cpu") -> list[Config]:
    """Each config with each implementation flag torch has for it on ``device``."""
    out = []
    for c in all_configs(device):
        facts = c.facts
        impls = ["foreach", "forloop"] if "foreach" in facts["supported_impls"] else []
        if "fused" in facts["supported_impls"] and device in facts["supports_fused_on"]:
            impls.append("fused")
        out += [Config(c.name, c.desc, c.base_kwargs, facts, device, impl) for impl in impls]
    return out


def unhonoured_configs(device: str = "cpu") -> list[Config]:
    """Each config with each flag nnopt declares it cannot honour on ``device``."""
    out = []
    for c in all_configs(device):
        flags = ["capturable"] if c.facts["has_capturable_arg"] and device == "cpu" else []
        out += [Config(c.name, c.desc, c.base_kwargs, c.facts, device, f) for f in flags]
    return out


def error_inputs(device: str = "cpu") -> list[tuple[str, tuple]]:
    data = load_optim_db(device)
    return [(name, e) for name in OPTIMIZERS for e in data[name]["errors"]]


# --- cases: a config in one layout x kernel mode (x dtype, x variant) -----------------------


@dataclass(frozen=True)
class Case:
    cfg: Config
    flat: bool
    kernels: str
    dtype: torch.dtype = torch.float32
    variant: str | None = None

    @property
    def device(self) -> str:
        return self.cfg.device


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def cases(
    source=all_configs,
    *,
    dtypes: tuple[torch.dtype, ...] | None = None,
    variants: tuple[str, ...] | None = None,
    layouts: tuple[str, ...] = tuple(LAYOUTS),
    kernels: tuple[str, ...] = KERNELS,
) -> list:
    """pytest params for every config of ``source`` x layout x kernel mode (x variant, dtype).

    On CPU-only machines a single ``cuda`` param stands for the CUDA half, skipped.
    """
    params = []
    for device in DEVICES:
        suffix = "" if device == "cpu" else "-cuda"
        for cfg in source(device):
            for layout in layouts:
                for mode in kernels:
                    for variant in variants or (None,):
                        for dtype in dtypes or (None,):
                            case = Case(cfg, LAYOUTS[layout], mode, dtype or torch.float32, variant)
                            parts = [cfg.id, layout, mode]
                            parts += [variant] if variant else []
                            parts += [_dtype_name(dtype)] if dtype else []
                            params.append(pytest.param(case, id="-".join(parts) + suffix))
    if not HAS_CUDA:
        params.append(
            pytest.param(None, id="cuda", marks=pytest.mark.skip(reason="CUDA not available"))
        )
    return params


def config_params(source=all_configs, *, layouts: tuple[str, ...] = tuple(LAYOUTS)) -> list:
    """pytest params for properties where the kernel mode cannot matter (construction)."""
    return cases(source, layouts=layouts, kernels=("any",))
