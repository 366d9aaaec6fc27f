"""Compact storage as a user meets it: exact resume from a state dict (and from a file loaded
with weights_only=True), a compact state loaded by a full-precision optimizer and the reverse,
the converter both ways against torch.optim.AdamW, bytes per parameter, and the refusals."""

from __future__ import annotations

import io

import lowbit_reference as ref
import pytest
import torch

import nnopt.optim as optim
from nnopt.checks import OptionError
from nnopt.optim import lowbit
from nnopt.optim.lowbit import codes, forms


def _model(dtype=torch.bfloat16, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.Tanh(), torch.nn.Linear(96, 8))
    return model.to(dtype)


def _train(model, opt, steps, seed=1):
    gen = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    for _ in range(steps):
        x = torch.randn(32, 64, generator=gen).to(dtype)
        y = torch.randn(32, 8, generator=gen)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x).float(), y).backward()
        opt.step()


def _compact(model, update="kahan", state="int8"):
    return optim.AdamW(model.parameters(), lr=3e-3, state_dtype=state, param_update=update)


@pytest.mark.parametrize("update", ["kahan", "stochastic", "plain"])
def test_resume_from_a_file_is_bit_for_bit(update):
    model = _model()
    opt = _compact(model, update)
    _train(model, opt, 5)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    _train(model, opt, 5, seed=2)

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # (nothing a user loads runs code)
    resumed = _model(seed=9)
    resumed.load_state_dict(saved["model"])
    opt2 = _compact(resumed, update)
    opt2.load_state_dict(saved["opt"])
    _train(resumed, opt2, 5, seed=2)
    for a, b in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    for p, q in zip(model.parameters(), resumed.parameters(), strict=True):
        s, t = opt.state[p], opt2.state[q]
        assert s.keys() == t.keys()
        for k in s:
            assert s[k].dtype == t[k].dtype and torch.equal(s[k], t[k]), k


def test_a_full_precision_optimizer_loads_the_compact_state_decoded():
    model = _model()
    opt = _compact(model)
    _train(model, opt, 4)
    saved = opt.state_dict()
    full = optim.AdamW(model.parameters(), lr=3e-3)
    full.load_state_dict(saved)
    group = full.param_groups[0]
    assert group["state_dtype"] is None and group["param_update"] == "plain"  # its own choice
    for p in model.parameters():
        held, compact = full.state[p], opt.state[p]
        assert set(held) == {"step", "exp_avg", "exp_avg_sq"}
        for k in ("exp_avg", "exp_avg_sq"):
            assert held[k].dtype == p.dtype and held[k].shape == p.shape
            expected = forms.read(compact, k).to(p.dtype)
            assert torch.equal(held[k], expected), k
    _train(model, full, 2)  # and it steps on


def test_a_compact_optimizer_loads_a_full_state_encoded():
    model = _model(torch.float32)
    reference = torch.optim.AdamW(model.parameters(), lr=3e-3)
    _train(model, reference, 4)
    opt = optim.AdamW(model.parameters(), lr=3e-3, state_dtype="int8")
    opt.load_state_dict(reference.state_dict())
    weight = model[0].weight  # 6,144 elements: 8 bits
    state = opt.state[weight]
    assert state["exp_avg"].dtype == torch.int8 and state["exp_avg_sq"].dtype == torch.uint8
    decoded, want = forms.read(state, "exp_avg"), reference.state[weight]["exp_avg"]
    # (an 8-bit small float: within 1/16 of each value, 2^-17 of its block's absmax below)
    assert ((decoded - want).abs() <= want.abs() / 16 + want.abs().max() * 2**-17).all()
    small = model[2].bias  # 8 elements: float32
    assert opt.state[small]["exp_avg"].dtype == torch.float32


def test_converter_round_trip_against_torch_adamw():
    model = _model(torch.float32)
    reference = torch.optim.AdamW(model.parameters(), lr=3e-3)
    _train(model, reference, 6)
    params = list(model.parameters())
    weights, compact_state = lowbit.to_compact(params, reference.state_dict())
    assert all(w.dtype == torch.bfloat16 for w in weights)

    # The compact form loads into nnopt's compact AdamW and steps there.
    bf16 = _model()
    with torch.no_grad():
        for p, w in zip(bf16.parameters(), weights, strict=True):
            p.copy_(w)
    opt = _compact(bf16)
    opt.load_state_dict(compact_state)
    for p in bf16.parameters():
        assert forms.held_in(
            forms.form_of(opt.param_groups[0], p), opt.state[p], opt.state_keys(opt.param_groups[0])
        )

    # Back to float32: the weights to the residual's precision (ulp / 256), the moments to
    # 1/16 of each; torch.optim.AdamW loads it and steps.
    full_weights, full_state = lowbit.to_full(weights, compact_state)
    for w, p in zip(full_weights, params, strict=True):
        ulp = ref.ulp_bf16(p.detach().to(torch.bfloat16)).float()
        assert ((w - p.detach()).abs() <= ulp / 250 + 1e-12).all()
    for index in range(len(params)):
        got, want = full_state["state"][index], reference.state_dict()["state"][index]
        assert set(got) == set(want)
        for k in ("exp_avg", "exp_avg_sq"):
            bound = want[k].abs() / 16 + want[k].abs().max() * 2**-17 + 1e-30
            assert ((got[k] - want[k]).abs() <= bound).all(), k
    # compact -> full -> compact gives the same codes and scales.
    _, twice = lowbit.to_compact(full_weights, full_state)
    for index in compact_state["state"]:
        for k, v in compact_state["state"][index].items():
            if k != forms.COMP:
                assert torch.equal(twice["state"][index][k], v), k
    again = torch.optim.AdamW(model.parameters(), lr=3e-3)
    again.load_state_dict(full_state)
    _train(model, again, 1)


def test_bytes_per_parameter():
    big = [torch.nn.Parameter(torch.zeros(1 << 16, dtype=torch.bfloat16)) for _ in range(2)]
    for p in big:
        p.grad = torch.ones_like(p)
    expected = {
        ("int8", "kahan"): 2 + 2 + 1 + 1 + 1 + 2 * 4 / 256,  # FlashOptim's 7 B, plus the scales
        ("int8", "stochastic"): 2 + 2 + 1 + 1 + 2 * 4 / 256,  # (+ one 8-byte seed per tensor)
        ("bfloat16", "kahan"): 2 + 2 + 2 + 2 + 2,
    }
    for (state, update), want in expected.items():
        opt = optim.AdamW(big, lr=1e-3, state_dtype=state, param_update=update)
        opt.step()
        counters = sum(8 + 4 for _ in big) if update == "stochastic" else sum(4 for _ in big)
        assert lowbit.bytes_per_param(opt) == pytest.approx(want + counters / (2 << 16))


def test_stochastic_rounding_is_unbiased():
    # x between two bfloat16 neighbours at a fraction f of the gap: over many seeds the mean
    # of round(x) is x (its spread: ulp sqrt(f (1 - f) / seeds)).
    below = torch.tensor(1.0, dtype=torch.bfloat16)
    ulp = float(ref.ulp_bf16(below))
    fractions = torch.linspace(0.01, 0.99, 99)
    x = (1.0 + fractions * ulp).float()
    seeds = 4000
    total = torch.zeros(99, dtype=torch.float64)
    for seed in range(seeds):
        total += codes.round_stochastic(x, seed).double()
    mean = total / seeds
    sigma = ulp * torch.sqrt(fractions * (1 - fractions) / seeds).double()
    assert ((mean - x.double()).abs() <= 5 * sigma).all()
    # (and the rounding is never further than one gap away)
    one = codes.round_stochastic(x, 7).double()
    assert ((one == 1.0) | (one == 1.0 + ulp)).all()


@pytest.mark.parametrize("update,moves", [("plain", False), ("kahan", True), ("stochastic", True)])
def test_small_updates_move_a_bfloat16_weight_only_with_kahan_or_stochastic(update, moves):
    # SGD with lr * g = 1/10 of a bfloat16 ulp at 1.0: to nearest it never moves (the reason
    # both options exist); Kahan moves it by the exact sum, stochastic rounding on average.
    w = torch.nn.Parameter(torch.ones(8192, dtype=torch.bfloat16))
    opt = optim.SGD([w], lr=2.0**-7 / 10, state_dtype="float32", param_update=update)
    torch.manual_seed(0)
    for _ in range(100):
        w.grad = torch.ones_like(w)
        opt.step()
    expected = 1.0 - 100 * 2.0**-7 / 10  # 0.921875
    mean = float(w.double().mean())
    if not moves:
        assert mean == 1.0
    else:
        assert mean == pytest.approx(expected, abs=2e-4)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda ps: optim.Adafactor(ps, state_dtype="int8"), "reads each weight whole"),
        (lambda ps: optim.SOAP(ps, param_update="kahan"), "reads each weight whole"),
        (lambda ps: optim.AdamW(ps, state_dtype="int8", flat=True), "flat=True"),
        (lambda ps: optim.AdamW(ps, state_dtype="int8", differentiable=True), "differentiable"),
        (lambda ps: optim.ScheduleFreeAdamW(ps, state_dtype="int8"), "z holds weights"),
        (lambda ps: optim.RMSprop(ps, state_dtype="int8", centered=True), "centered"),
        (lambda ps: optim.AdamW(ps, state_dtype="int4"), "state_dtype must be one of"),
        (
            lambda ps: optim.AdamW([torch.zeros(3, dtype=torch.complex64)], state_dtype="int8"),
            "real parameters",
        ),
        (lambda ps: optim.SGD(ps, lr=0.1, param_update="round"), "param_update must be one of"),
    ],
)
def test_refusals_name_the_option(make, match):
    params = [torch.nn.Parameter(torch.zeros(8, 8))]
    with pytest.raises((OptionError, ValueError), match=match):
        make(params)


def test_a_recipe_trains_bfloat16_weights_with_8bit_state(tmp_path):
    from nnopt.recipe import Recipe, RecipeError
    from nnopt.training import train

    text = """
name = "digits-compact"
seed = 3
[data]
name = "digits"
[model]
kind = "mlp"
hidden = [64]
dtype = "bfloat16"
[optimizer]
name = "adamw"
lr = 0.01
state_dtype = "int8"
param_update = "kahan"
[train]
batch_size = 64
steps = 60
eval_every = 20
"""
    recipe = Recipe.loads(text)
    assert recipe.optimizer.state_dtype == "int8" and recipe.optimizer.param_update == "kahan"
    result = train(recipe, tmp_path)
    opt_state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["optimizer"]
    first = opt_state["state"][0]  # the 64 x 64 weight: 8 bits, with its residual
    assert first["exp_avg"].dtype == torch.int8 and first[forms.COMP].dtype == torch.int8
    rows = result.history
    assert rows[-1]["val_accuracy"] > 0.9 and rows[-1]["train_loss"] < 0.3 * rows[0]["train_loss"]
    with pytest.raises(RecipeError, match="state_dtype"):
        train(Recipe.loads(text.replace('"int8"', '"int4"')), tmp_path / "bad")


def test_a_compiled_step_is_the_eager_step_bit_for_bit():
    # torch.compile breaks the graph at the compact step (inductor cannot compile its bit
    # operations) and runs it eagerly, with the native kernel: the same bits as without.
    runs = []
    for compiled in (True, False):
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.randn(5000).to(torch.bfloat16))
        opt = optim.AdamW([w], lr=torch.tensor(1e-2), state_dtype="int8", param_update="stochastic")
        step = torch.compile(opt.step) if compiled else opt.step
        gen = torch.Generator().manual_seed(1)
        for _ in range(3):
            w.grad = torch.randn(5000, generator=gen).to(torch.bfloat16)
            step()
        runs.append((w.detach().clone(), dict(opt.state[w])))
    (w1, s1), (w2, s2) = runs
    assert torch.equal(w1, w2)
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)


def test_sharded_state_refuses_compact_storage():
    from nnopt.distributed.sharded import ShardedOptimizer

    opt = _compact(_model())
    with pytest.raises(ValueError, match="compact state is not sharded yet"):
        ShardedOptimizer(opt)
