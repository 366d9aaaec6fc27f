"""The twins' constructor arguments as the installed torch has them, read at import.

nnopt supports a range of torch releases (``pyproject.toml``), and torch.optim's signatures
move inside it: Adam took ``decoupled_weight_decay`` after 2.4, for one. A twin means "same call,
same meaning" on the torch the user has, so:

- an argument nnopt and the installed torch share takes torch's default (:func:`follow`
  rewrites the constructor's defaults at import where torch's differ: a release that changes
  a default changes nnopt's with it);
- an argument the installed torch lacks is an nnopt extra there (keyword-only, with the
  meaning the newer torch gives it): :func:`extras` lists them;
- an argument only the installed torch has cannot be given torch's meaning without code:
  ``tests/torch_suite/test_api.py::test_constructor_signature`` fails on that torch, naming it.

``table.py`` applies :func:`follow` to every twin of its rows, so importing any optimizer
(which imports ``nnopt.optim`` and so the table) sees the followed defaults.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from functools import cache
from typing import Any

import torch

POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@cache
def torch_parameters(twin: str) -> Mapping[str, inspect.Parameter]:
    """The constructor parameters of ``torch.optim.<twin>`` in the installed torch."""
    return inspect.signature(getattr(torch.optim, twin).__init__).parameters


def torch_has(twin: str, argument: str) -> bool:
    """Whether the installed torch's ``torch.optim.<twin>`` takes ``argument``."""
    return argument in torch_parameters(twin)


def extras(cls: type, twin: str) -> tuple[str, ...]:
    """``cls``'s arguments the installed torch's twin lacks: nnopt's own on this torch."""
    ours = inspect.signature(cls.__init__).parameters
    theirs = torch_parameters(twin)
    return tuple(n for n, p in ours.items() if n not in theirs and p.kind != p.VAR_KEYWORD)


def follow(cls: type, twin: str) -> dict[str, tuple[Any, Any]]:
    """Give ``cls.__init__`` the installed torch's default of every argument both have.

    Returns what changed, ``{name: (nnopt's default, torch's)}`` (empty on the torch nnopt's
    signatures were written against). Idempotent.
    """
    init = cls.__dict__.get("__init__")
    if init is None:  # an inherited constructor belongs to (and follows with) its own class
        return {}
    theirs = torch_parameters(twin)
    changed: dict[str, tuple[Any, Any]] = {}
    positional_defaults = []
    keyword_defaults = dict(init.__kwdefaults__ or {})
    for name, p in inspect.signature(init).parameters.items():
        if p.default is p.empty:
            continue
        default = p.default
        theirs_p = theirs.get(name)
        shared = theirs_p is not None and theirs_p.default is not theirs_p.empty
        if shared and not _same(theirs_p.default, default):
            changed[name] = (default, theirs_p.default)
            default = theirs_p.default
        if p.kind in POSITIONAL:
            positional_defaults.append(default)
        else:
            keyword_defaults[name] = default
    if changed:
        init.__defaults__ = tuple(positional_defaults) or None
        init.__kwdefaults__ = keyword_defaults or None
    return changed


def _same(a: Any, b: Any) -> bool:
    # 0 and 0.0 are the same default; False and 0 are not (a bool option stays a bool).
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b
