import math
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler

import nnopt
from nnopt import schedules
from nnopt.checks import OptionError
from nnopt.schedules import (
    ReduceOnPlateau,
    constant,
    cosine,
    exponential_decay,
    join,
    linear_warmup,
    one_cycle,
    step_decay,
)


def torch_lrs(make_scheduler, steps: int, lr: float = 1.0) -> list[float]:
    """The lr torch's scheduler has set before each optimizer step 0, 1, ..., steps-1."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


# ---------------------------------------------------------------- closed forms


def test_constant():
    assert [constant(0.3)(s) for s in (0, 5, 10_000)] == [0.3, 0.3, 0.3]


def test_step_decay_closed_form():
    s = step_decay(1.0, step_size=3, gamma=0.5)
    assert [s(i) for i in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]


def test_exponential_decay_closed_form():
    s = exponential_decay(2.0, gamma=0.5, decay_steps=4)
    assert s(0) == 2.0
    assert s(2) == pytest.approx(2.0 * 0.5**0.5)
    assert s(8) == pytest.approx(0.5)
    stair = exponential_decay(2.0, gamma=0.5, decay_steps=4, staircase=True)
    assert [stair(i) for i in (0, 3, 4, 7, 8)] == [2.0, 2.0, 1.0, 1.0, 0.5]


def test_linear_warmup_closed_form():
    s = linear_warmup(1.0, warmup_steps=4, init_lr=0.2)
    assert [s(i) for i in range(6)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    assert linear_warmup(1.0, 10)(0) == 0.0


def test_cosine_closed_form():
    s = cosine(1.0, decay_steps=10, final_lr=0.1)
    assert s(0) == pytest.approx(1.0)
    assert s(5) == pytest.approx(0.55)
    assert s(10) == pytest.approx(0.1)
    assert s(50) == pytest.approx(0.1)  # stays at the floor after the horizon


def test_one_cycle_closed_form():
    s = one_cycle(1.0, total_steps=100, pct_start=0.3, div_factor=10.0, final_div_factor=100.0)
    assert s(0) == pytest.approx(0.1)
    assert s(29) == pytest.approx(1.0)  # the peak at pct_start * total - 1
    assert s(99) == pytest.approx(0.1 / 100)
    assert s(500) == pytest.approx(0.1 / 100)
    assert max(s(i) for i in range(100)) == pytest.approx(1.0)


def test_join_warmup_then_cosine():
    s = join([linear_warmup(1.0, 5), cosine(1.0, 10)], [5])
    assert [s(i) for i in range(5)] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert s(5) == pytest.approx(1.0)  # the cosine's own step 0
    assert s(10) == pytest.approx(0.5)
    assert s(15) == pytest.approx(0.0)


def test_join_three_pieces():
    s = join([constant(1.0), constant(2.0), step_decay(3.0, 2, 0.5)], [2, 4])
    assert [s(i) for i in range(8)] == [1, 1, 2, 2, 3, 3, 1.5, 1.5]


def test_schedules_pickle_and_print():
    s = join([linear_warmup(1.0, 5), cosine(1.0, 10, final_lr=0.01)], [5])
    t = pickle.loads(pickle.dumps(s))
    assert t == s
    assert [t(i) for i in range(20)] == [s(i) for i in range(20)]
    assert repr(step_decay(0.1, 30)) == "step_decay(lr=0.1, step_size=30, gamma=0.1)"


# ---------------------------------------------------------------- vs torch


def test_step_decay_matches_torch():
    ref = torch_lrs(lambda o: lr_scheduler.StepLR(o, step_size=7, gamma=0.3), 40, lr=0.5)
    s = step_decay(0.5, 7, 0.3)
    assert [s(i) for i in range(40)] == pytest.approx(ref, rel=1e-12)


def test_exponential_decay_matches_torch():
    ref = torch_lrs(lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9), 40, lr=0.5)
    s = exponential_decay(0.5, 0.9)
    assert [s(i) for i in range(40)] == pytest.approx(ref, rel=1e-10)


def test_cosine_matches_torch():
    ref = torch_lrs(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=30, eta_min=0.01), 31)
    s = cosine(1.0, 30, final_lr=0.01)
    assert [s(i) for i in range(31)] == pytest.approx(ref, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    "total, pct, div, final_div",
    [(100, 0.3, 25.0, 1e4), (37, 0.25, 10.0, 100.0), (10, 0.5, 5.0, 10.0)],
)
def test_one_cycle_matches_torch(total, pct, div, final_div):
    ref = torch_lrs(
        lambda o: lr_scheduler.OneCycleLR(
            o,
            max_lr=0.8,
            total_steps=total,
            pct_start=pct,
            div_factor=div,
            final_div_factor=final_div,
            anneal_strategy="cos",
            three_phase=False,
            cycle_momentum=False,
        ),
        total,
    )
    s = one_cycle(0.8, total, pct, div, final_div)
    assert [s(i) for i in range(total)] == pytest.approx(ref, rel=1e-12, abs=1e-15)


# ---------------------------------------------------------------- plateau


def _sequences(mode: str) -> dict[str, list[float]]:
    rng = np.random.default_rng(0)
    walk = (1.0 + np.cumsum(rng.normal(0.0, 0.05, 60))).tolist()
    improve_flat = [1.0 / (i + 1) for i in range(10)] + [0.1] * 30
    noisy_plateau = (0.5 + 1e-5 * rng.normal(size=40)).tolist()
    # Improves by 0.002 a step: better under rel 1e-3, not under abs 0.01.
    slow = [1.0 - 0.002 * i for i in range(30)]
    seqs = {"walk": walk, "plateau": [0.5] * 40, "noisy": noisy_plateau, "flat": improve_flat}
    seqs["slow"] = slow
    if mode == "max":  # mirror so 'improve' still means improving
        seqs = {k: [-v + 2.0 for v in seq] for k, seq in seqs.items()}
    return seqs


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("threshold_mode, threshold", [("rel", 1e-3), ("abs", 0.01)])
@pytest.mark.parametrize("cooldown", [0, 3])
def test_plateau_matches_torch(mode, threshold_mode, threshold, cooldown):
    kwargs = dict(
        mode=mode,
        factor=0.5,
        patience=2,
        threshold=threshold,
        threshold_mode=threshold_mode,
        cooldown=cooldown,
        min_lr=0.0,
    )
    for name, seq in _sequences(mode).items():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        ref = lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
        ours = ReduceOnPlateau(**kwargs)
        assert ours.scale == 1.0
        for value in seq:
            ref.step(value)
            assert ours.update(value) == opt.param_groups[0]["lr"], name
        assert ours.scale == opt.param_groups[0]["lr"]


def test_plateau_eps_stops_tiny_reductions():
    p = ReduceOnPlateau(factor=0.5, patience=0, eps=0.3)
    scales = [p.update(1.0) for _ in range(5)]
    # 1.0 -> 0.5 changes by 0.5 > eps; 0.5 -> 0.25 changes by 0.25 <= eps: stays.
    assert scales == [1.0, 0.5, 0.5, 0.5, 0.5]


def test_plateau_state_dict_round_trip():
    seq = _sequences("min")["walk"]
    a = ReduceOnPlateau(factor=0.5, patience=2, cooldown=2)
    for v in seq[:25]:
        a.update(v)
    state = a.state_dict()
    assert all(isinstance(v, float | int | str) for v in state.values())
    b = ReduceOnPlateau()
    b.load_state_dict(pickle.loads(pickle.dumps(state)))
    assert [a.update(v) for v in seq[25:]] == [b.update(v) for v in seq[25:]]
    assert ReduceOnPlateau().state_dict()["best"] == math.inf


def test_plateau_load_rejects_bad_state():
    with pytest.raises(ValueError, match="missing"):
        ReduceOnPlateau().load_state_dict({"scale": 0.5})
    bad = ReduceOnPlateau().state_dict() | {"factor": 2.0}
    with pytest.raises(ValueError, match="factor"):
        ReduceOnPlateau().load_state_dict(bad)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: constant(-1.0), "lr"),
        (lambda: step_decay(-0.1, 10), "lr"),
        (lambda: step_decay(0.1, 0), "step_size"),
        (lambda: step_decay(0.1, 10, gamma=0.0), "gamma"),
        (lambda: step_decay(0.1, 10, gamma=1.5), "gamma"),
        (lambda: exponential_decay(0.1, 1.01), "gamma"),
        (lambda: exponential_decay(0.1, 0.9, decay_steps=0), "decay_steps"),
        (lambda: linear_warmup(0.1, 0), "warmup_steps"),
        (lambda: linear_warmup(-0.1, 5), "peak_lr"),
        (lambda: linear_warmup(0.1, 5, init_lr=-1.0), "init_lr"),
        (lambda: cosine(0.1, 0), "decay_steps"),
        (lambda: cosine(0.1, 10, final_lr=-1.0), "final_lr"),
        (lambda: one_cycle(0.1, 100, pct_start=0.0), "pct_start"),
        (lambda: one_cycle(0.1, 100, pct_start=1.0), "pct_start"),
        (lambda: one_cycle(0.1, 0), "total_steps"),
        (lambda: one_cycle(-0.1, 100), "max_lr"),
        (lambda: one_cycle(0.1, 100, div_factor=0.0), "div_factor"),
        (lambda: one_cycle(0.1, 100, final_div_factor=0.0), "final_div_factor"),
        (lambda: join([], []), "schedules"),
        (lambda: join([constant(1.0), constant(2.0)], []), "boundaries"),
        (lambda: join([constant(1.0), constant(2.0)], [0]), "boundaries"),
        (lambda: join([constant(1.0)] * 3, [5, 5]), "boundaries"),
        (lambda: ReduceOnPlateau(mode="avg"), "mode"),
        (lambda: ReduceOnPlateau(threshold_mode="pct"), "threshold_mode"),
        (lambda: ReduceOnPlateau(factor=1.0), "factor"),
        (lambda: ReduceOnPlateau(factor=0.0), "factor"),
        (lambda: ReduceOnPlateau(patience=-1), "patience"),
        (lambda: ReduceOnPlateau(cooldown=-1), "cooldown"),
        (lambda: ReduceOnPlateau(threshold=-1e-4), "threshold"),
        (lambda: ReduceOnPlateau(min_lr=-1.0), "min_lr"),
    ],
)
def test_validation_names_the_argument(make, name):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        make()


def test_the_schedule_type_is_defined_once_in_schedules():
    src = Path(nnopt.__file__).parent
    defined = {
        path.relative_to(src).as_posix()
        for path in src.rglob("*.py")
        if re.search(r"^Schedule\s*[:=]", path.read_text(), re.MULTILINE)
    }
    assert defined == {"schedules.py"}, defined
    assert "Schedule" in schedules.__all__


@pytest.mark.parametrize(
    ("build", "option", "words"),
    [
        (lambda: schedules.step_decay(lr=0.1, step_size=0, gamma=0.5), "step_size", ">= 1"),
        (lambda: schedules.constant(lr=-1.0), "lr", ">= 0"),
        (lambda: schedules.cosine(lr=0.1, final_lr=0.0, decay_steps=0), "decay_steps", ">= 1"),
    ],
)
def test_a_bad_argument_names_itself(build, option: str, words: str) -> None:
    """The same error as an optimizer's options: a ValueError that names the argument."""
    with pytest.raises(OptionError, match=f"^{option} must be {words}, got ") as raised:
        build()
    assert raised.value.option == option
