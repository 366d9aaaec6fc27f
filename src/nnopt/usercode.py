"""The user's own Python in a recipe: ``model.factory`` and ``data.factory``.

A factory is named ``"module:function"`` (importable, the working directory first on the
path, as ``python -m`` has it) or ``"path/to/file.py:function"`` (relative to the working
directory). Every way it can fail (not importable, no such function, not callable, it raises,
it returns the wrong thing) is one :class:`RecipeError` line naming the recipe field.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from nnopt.errors import RecipeError

# model.factory / data.factory of a recipe whose model or data came as an object
# (``nnopt.train(..., model=..., data=...)``): nothing to import; a resume needs it passed again.
PASSED = "python:passed to nnopt.train"


def resolve(spec: str, field: str) -> Callable[..., Any]:
    """The callable ``spec`` names, or one line saying why it cannot be had."""
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise RecipeError(
            f"{field}: {spec!r} must be 'module:function' or 'path/to/file.py:function'"
        )
    module = _module(where, field)
    target = getattr(module, name, None)
    if target is None:
        raise RecipeError(f"{field}: {where} has no {name!r}")
    if not callable(target):
        raise RecipeError(f"{field}: {where}:{name} is a {type(target).__name__}, not a function")
    return target


def call(factory: Callable[..., Any], spec: str, field: str, args: dict, given: dict) -> Any:
    """``factory(**args, **the given values its signature asks for)``; one line if it raises.

    ``given`` holds what nnopt offers (a model factory gets ``input_shape``, ``input_dim`` and
    ``output_dim``): each is passed only when the signature names it or takes ``**kwargs``.
    """
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    clash = sorted(set(args) & set(given))
    if clash:
        raise RecipeError(
            f"{field}: {', '.join(clash)} come(s) from the data; remove them from args"
        )
    offered = {k: v for k, v in given.items() if takes_all or k in parameters}
    try:
        return factory(**args, **offered)
    except TypeError as exc:
        if _signature_mismatch(factory, {**args, **offered}):
            raise RecipeError(f"{field}: {spec} does not take these args: {exc}") from exc
        raise RecipeError(f"{field}: {spec} raised TypeError: {exc}") from exc
    except Exception as exc:
        raise RecipeError(f"{field}: {spec} raised {type(exc).__name__}: {exc}") from exc


def _signature_mismatch(factory: Callable[..., Any], kwargs: dict) -> bool:
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError:
        return True
    except ValueError:
        return False
    return False


def _module(where: str, field: str) -> ModuleType:
    if where.endswith(".py") or os.sep in where or "/" in where:
        return _module_from_file(Path(where), field)
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(where)
    except Exception as exc:
        raise RecipeError(
            f"{field}: cannot import {where!r} ({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        if added:
            sys.path.remove(cwd)


def _module_from_file(path: Path, field: str) -> ModuleType:
    if not path.is_file():
        raise RecipeError(f"{field}: no file {path} (paths are relative to the working directory)")
    resolved = path.resolve()
    # One module per file, loaded once: a run, its resume and lr-find build the same classes.
    name = "nnopt_user_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise RecipeError(f"{field}: {path} cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise RecipeError(f"{field}: importing {path} raised {type(exc).__name__}: {exc}") from exc
    return module
