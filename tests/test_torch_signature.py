"""The twins follow the installed torch's signatures (``nnopt.optim.torch_signature``).

On the torch installed here nothing differs, so the rewriting of defaults is checked on a
stand-in torch class; ``make test-torch-versions`` runs the signature test of the ported suite
on the lowest torch nnopt supports and on the newest.
"""

from __future__ import annotations

import inspect

import pytest
import torch

import nnopt
from nnopt.optim import torch_signature
from nnopt.optim.torch_signature import extras, follow, torch_has

TWINS = ("SGD", "Adam", "AdamW", "Adagrad", "RMSprop")


def _defaults(cls: type) -> dict:
    return {
        n: p.default
        for n, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not p.empty
    }


@pytest.fixture
def stand_in_torch(monkeypatch):
    """A torch.optim class ``Twin`` whose defaults differ from nnopt's SGD's (a future torch)."""

    class Twin(torch.optim.Optimizer):
        def __init__(
            self, params, lr=0.5, momentum=0, dampening=0, weight_decay=0, nesterov=False,
            *, maximize=False, foreach=True, differentiable=False, fused=None, new_flag=1,
        ):  # fmt: skip
            pass

    monkeypatch.setattr(torch.optim, "Twin", Twin, raising=False)
    torch_signature.torch_parameters.cache_clear()
    yield "Twin"
    torch_signature.torch_parameters.cache_clear()


def _sgd_copy() -> type:
    """A subclass of nnopt.SGD with a copy of its constructor, rewritten freely."""
    init = nnopt.SGD.__init__
    copy = type(init)(
        init.__code__, init.__globals__, init.__name__, init.__defaults__, init.__closure__
    )
    copy.__kwdefaults__ = dict(init.__kwdefaults__)
    return type("SGDCopy", (nnopt.SGD,), {"__init__": copy})


def test_defaults_follow_the_installed_torch(stand_in_torch):
    cls = _sgd_copy()
    changed = follow(cls, stand_in_torch)
    assert changed == {"lr": (1e-3, 0.5), "foreach": (None, True)}
    assert _defaults(cls)["lr"] == 0.5 and _defaults(cls)["foreach"] is True
    p = torch.nn.Parameter(torch.ones(2))
    opt = cls([p])
    assert opt.defaults["lr"] == 0.5 and opt.defaults["foreach"] is True
    assert follow(cls, stand_in_torch) == {}  # idempotent
    # nnopt's extras keep their defaults; torch's argument nnopt lacks is not invented
    assert _defaults(cls)["flat"] is False and "new_flag" not in _defaults(cls)
    assert _defaults(nnopt.SGD)["lr"] == 1e-3  # the class copied from is untouched


def test_inherited_constructor_is_left_to_its_class(stand_in_torch):
    cls = type("Sub", (nnopt.SGD,), {})
    assert follow(cls, stand_in_torch) == {}
    assert _defaults(nnopt.SGD)["lr"] == 1e-3


@pytest.mark.parametrize("name", TWINS)
def test_twins_have_the_installed_torchs_defaults(name):
    ours = _defaults(getattr(nnopt, name))
    theirs = torch_signature.torch_parameters(name)
    for n, p in theirs.items():
        if p.default is not p.empty:
            assert ours[n] == p.default and type(ours[n]) is type(p.default), n
    assert follow(getattr(nnopt, name), name) == {}


def test_extras_are_what_this_torch_lacks():
    compact = {"state_dtype", "param_update", "min_8bit_size"}  # compact storage (issue 26)
    assert set(extras(nnopt.SGD, "SGD")) == {"decoupled_weight_decay", "l1", "l2", "flat"} | compact
    adam = set(extras(nnopt.Adam, "Adam"))
    if torch_has("Adam", "decoupled_weight_decay"):
        assert adam == {"l1", "l2", "flat"} | compact
    else:  # torch 2.4: nnopt's, with the newer torch's meaning
        assert adam == {"decoupled_weight_decay", "l1", "l2", "flat"} | compact
