"""Checkpoints: state_dict round trips, copies, interop with torch.optim, older formats,
the step counter, state-dict hooks and named parameters (TestOptimRenewed's state properties).

Every continuation is checked step by step: an optimizer restored from a checkpoint must take
the very steps the original takes. Gradients are assigned (``p.grad = g``) rather than
backpropagated here; test_matches.py covers the backward path.
"""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import Tensor

from tests.torch_suite import configs
from tests.torch_suite.common import (
    FEW,
    assert_params_close,
    assert_params_equal,
    assert_states_close,
    assign_step,
    clones,
    grads_for,
    leaves,
    make_nnopt,
    make_torch,
    run_side_by_side,
)
from tests.torch_suite.configs import Case

# Options added to param groups over torch's versions: an older checkpoint lacks them.
NEW_FLAGS = ("maximize", "foreach", "fused", "differentiable", "capturable")


def assert_equal_trees(a, b, where="state_dict"):
    """Two state dicts hold the same structure and values (tensors compared exactly)."""
    if isinstance(b, Tensor):
        assert isinstance(a, Tensor), f"{where}: {type(a).__name__} where torch has a Tensor"
        assert a.dtype == b.dtype and a.device == b.device, f"{where}: dtype/device differ"
        assert torch.equal(a, b), f"{where}: values differ"
    elif isinstance(b, dict):
        assert isinstance(a, dict) and set(a) == set(b), (
            f"{where}: keys {sorted(map(str, a))} != {sorted(map(str, b))}"
        )
        for k in b:
            assert_equal_trees(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(b, list | tuple):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_equal_trees(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def primed(case: Case, steps: int = 2):
    """An nnopt optimizer after ``steps`` steps, its parameters, and the gradients to come."""
    params = leaves(FEW, device=case.device)
    grads = grads_for(params, steps + 2)
    opt = make_nnopt(case, params)
    for g in grads[:steps]:
        assign_step(opt, params, g)
    return opt, params, grads[steps:]


def continue_both(a, pa, b, pb, grads, *, exact=True):
    for t, g in enumerate(grads):
        assign_step(a, pa, g)
        assign_step(b, pb, g)
        if exact:
            assert_params_equal(pb, pa, f"continuation step {t + 1}, parameters")
        else:
            assert_params_close(pb, pa, f"continuation step {t + 1}, parameters")


@pytest.mark.parametrize("case", configs.cases())
def test_state_dict_round_trip(case: Case):
    """Load into a fresh optimizer: identical continuation; the dict is left unmodified; equal
    (not identical) parameters give equal state dicts; repeated groups look alike."""
    opt, params, rest = primed(case)
    saved = copy.deepcopy(opt.state_dict())
    given = copy.deepcopy(opt.state_dict())
    twin_params = clones(params)
    twin = make_nnopt(case, twin_params)
    twin.load_state_dict(given)
    assert_equal_trees(given, saved, "the loaded state_dict (modified by loading)")
    continue_both(opt, params, twin, twin_params, rest)
    assert_equal_trees(twin.state_dict(), opt.state_dict())
    twin.param_groups.extend(twin.param_groups)
    assert_equal_trees(twin.state_dict()["param_groups"][-1], opt.state_dict()["param_groups"][-1])


@pytest.mark.parametrize("case", configs.cases())
def test_copies_continue(case: Case):
    """deepcopy and pickle (of parameters and optimizer together) and torch.save with
    weights_only=True (of the state dict) all continue exactly as the original."""
    opt, params, rest = primed(case)
    public = {k for k in vars(opt) if not k.startswith("_")}

    copied_params, copied = copy.deepcopy((params, opt))
    assert {k for k in vars(copied) if not k.startswith("_")} == public, "deepcopy lost attributes"
    pickled_params, pickled = pickle.loads(pickle.dumps((params, opt)))
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    loaded_params = clones(params)
    loaded = make_nnopt(case, loaded_params)
    loaded.load_state_dict(torch.load(buffer, weights_only=True))

    for t, g in enumerate(rest):
        for o, ps in ((opt, params), (copied, copied_params), (pickled, pickled_params)):
            assign_step(o, ps, g)
        assign_step(loaded, loaded_params, g)
        assert_params_equal(copied_params, params, f"deepcopy, step {t + 1}")
        assert_params_equal(pickled_params, params, f"pickle, step {t + 1}")
        assert_params_equal(loaded_params, params, f"torch.save/load, step {t + 1}")


@pytest.mark.parametrize("case", configs.cases())
def test_state_dict_interop_with_torch(case: Case):
    """torch.optim's state dict loads into nnopt and nnopt's into torch.optim; each then
    steps as the other does."""
    params = leaves(FEW, device=case.device)
    grads = grads_for(params, 4)
    theirs = clones(params)
    ref = make_torch(case.cfg, theirs)
    for g in grads[:2]:
        assign_step(ref, theirs, g)
    mine = clones(theirs)
    ours = make_nnopt(case, mine)
    ours.load_state_dict(copy.deepcopy(ref.state_dict()))
    assert_states_close(ours, ref, mine, theirs)
    continue_both(ref, theirs, ours, mine, grads[2:3], exact=False)
    assert_states_close(ours, ref, mine, theirs)
    # and back: torch.optim from nnopt's state dict
    back = clones(mine)
    ref_again = make_torch(case.cfg, back)
    ref_again.load_state_dict(copy.deepcopy(ours.state_dict()))
    assert_states_close(ours, ref_again, mine, back)
    continue_both(ref_again, back, ours, mine, grads[3:], exact=False)


@pytest.mark.parametrize("case", configs.cases())
def test_loads_older_state_dict(case: Case):
    """A checkpoint without the newer group flags, and one whose ``step`` is a Python float
    (older torch), load and continue as torch.optim continues from the same checkpoint."""
    params = leaves(FEW, device=case.device)
    ours, ref, mine, theirs = run_side_by_side(case, params, steps=2)
    for opt in (ours, ref):
        old = copy.deepcopy(opt.state_dict())
        for group in old["param_groups"]:
            for flag in NEW_FLAGS:
                group.pop(flag, None)
        for state in old["state"].values():
            if isinstance(state.get("step"), Tensor):
                state["step"] = state["step"].item()
        opt.load_state_dict(old)
    for t, g in enumerate(grads_for(params, 1, seed=9)):
        assign_step(ours, mine, g)
        assign_step(ref, theirs, g)
        assert_params_close(mine, theirs, f"after loading, step {t + 1}")
        assert_states_close(ours, ref, mine, theirs)


@pytest.mark.parametrize("case", configs.cases(configs.default_configs, variants=("f32", "f64")))
def test_step_counter_dtype_and_device(case: Case):
    """``state['step']`` is a tensor of torch's scalar dtype (float32, float64 under a float64
    default dtype) on the CPU (on the parameter's device when fused), like torch.optim's."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if case.variant == "f64" else torch.float32)
    try:
        params = leaves(((3,), (2, 2)), dtype=torch.float32, device=case.device)
        ours, ref, mine, _ = run_side_by_side(case, params, steps=2)
    finally:
        torch.set_default_dtype(previous)
    for p in mine:
        step = ours.state[p].get("step")
        if case.cfg.name == "SGD":
            assert step is None, "SGD keeps no step counter in torch.optim"
            continue
        assert isinstance(step, Tensor), f"step is {type(step).__name__}, not a Tensor"
        assert step.dtype == (torch.float64 if case.variant == "f64" else torch.float32)
        assert step.device.type == "cpu" and step.dim() == 0


@pytest.mark.parametrize("case", configs.cases(configs.default_configs))
def test_state_dict_hooks(case: Case):
    """state_dict pre/post hooks and load_state_dict pre (appended, prepended) / post hooks
    run in order; a post hook's return value is the state dict; a load pre hook's is loaded."""
    opt, params, _ = primed(case, steps=1)
    calls = []

    def sd_pre(o):
        calls.append(("sd_pre", o is opt))

    def sd_post(o, sd):
        calls.append(("sd_post", o is opt))
        sd["extra"] = "kept"
        return sd

    opt.register_state_dict_pre_hook(sd_pre)
    opt.register_state_dict_post_hook(sd_post)
    sd = opt.state_dict()
    assert calls == [("sd_pre", True), ("sd_post", True)]
    assert sd["extra"] == "kept"
    sd.pop("extra")

    calls.clear()

    def load_pre_1(o, sd):
        calls.append("pre_1")
        sd = copy.deepcopy(sd)
        sd["param_groups"][0]["lr"] = 0.5
        return sd

    def load_pre_2(o, sd):
        calls.append("pre_2")

    def load_post(o):
        calls.append(("post", o.param_groups[0]["lr"]))

    opt.register_load_state_dict_pre_hook(load_pre_1)
    opt.register_load_state_dict_pre_hook(load_pre_2, prepend=True)
    opt.register_load_state_dict_post_hook(load_post)
    opt.load_state_dict(sd)
    assert calls == ["pre_2", "pre_1", ("post", 0.5)]
    assert opt.param_groups[0]["lr"] == 0.5


@pytest.mark.parametrize("case", configs.cases())
def test_non_empty_state(case: Case):
    """torch's test_non_empty_state: after a step every entry of ``optimizer.state`` holds
    something (plain SGD, maximize included, makes no entry at all), and the state dict
    has torch's parameter indices."""
    params = leaves(FEW, device=case.device)
    opt, ref = make_nnopt(case, clones(params)), make_torch(case.cfg, clones(params))
    for o in (opt, ref):
        assign_step(o, o.param_groups[0]["params"], grads_for(params, 1)[0])
    assert all(len(state) > 0 for state in opt.state.values()), dict(opt.state)
    assert sorted(opt.state_dict()["state"]) == sorted(ref.state_dict()["state"])


@pytest.mark.parametrize("case", configs.cases(configs.default_configs))
def test_load_state_dict_post_hook_sees_a_loaded_optimizer(case: Case):
    """torch's test_load_state_dict_post_hook / _pre_post_hook: a post hook may store any
    value in ``optimizer.state`` (torch's tests store a bool), and sees the optimizer fully
    loaded (every group option, nnopt's included); loading and stepping go on as torch's."""
    opt, params, _ = primed(case, steps=1)
    ref = make_torch(case.cfg, clones(params))
    seen = []

    def pre(o, sd):
        o.state["pre_flag"] = "set before loading"  # torch's state is a plain defaultdict

    def post(o):
        o.state["post_flag"] = True
        seen.append({k: v for k, v in o.param_groups[0].items() if k != "params"})

    for o in (opt, ref):
        o.register_load_state_dict_pre_hook(pre)
        o.register_load_state_dict_post_hook(post)
    opt.load_state_dict(opt.state_dict())
    ref.load_state_dict(ref.state_dict())
    for key in ("l1", "l2", "base_lr", "lr", "decoupled_weight_decay"):
        assert key in seen[0], f"the post hook saw a group without {key!r}: {sorted(seen[0])}"
    assert opt.state["post_flag"] is True and ref.state["post_flag"] is True
    # A state dict holding a non-parameter entry loads again, as torch's does.
    opt.load_state_dict(opt.state_dict())
    assert opt.state["post_flag"] is True
    grads = grads_for(params, 2)
    for g in grads:
        assign_step(opt, params, g)


@pytest.mark.parametrize("case", configs.cases(configs.default_configs))
def test_named_parameters(case: Case):
    """Named parameters give state dicts with torch's ``param_names``, loadable both ways."""
    model = torch.nn.Linear(3, 2).to(case.device)
    twin = copy.deepcopy(model)
    try:
        ref = make_torch(case.cfg, twin.named_parameters())
    except TypeError as exc:
        # An older torch's optimizers take no (name, parameter) pairs; nnopt's, built on
        # torch's base, refuse them alike there.
        with pytest.raises(TypeError):
            make_nnopt(case, model.named_parameters())
        pytest.skip(f"torch {torch.__version__} takes no named parameters: {exc}")
    ours = make_nnopt(case, model.named_parameters())
    x = torch.randn(4, 3, device=case.device)
    for opt, m in ((ours, model), (ref, twin)):
        opt.zero_grad()
        m(x).sum().backward()
        opt.step()
    assert ours.state_dict()["param_groups"][0]["param_names"] == ["weight", "bias"]
    assert_params_close(list(model.parameters()), list(twin.parameters()))
    ref.load_state_dict(copy.deepcopy(ours.state_dict()))
    ours.load_state_dict(copy.deepcopy(ref.state_dict()))


@pytest.mark.skipif(not configs.HAS_CUDA, reason="CUDA not available")
@pytest.mark.parametrize("case", configs.cases(configs.default_configs))
def test_cpu_state_dict_loads_on_cuda(case: Case):
    """A CPU checkpoint loads for CUDA parameters: state moves to them, ``step`` stays on
    the CPU, and both continue alike."""
    if case.device != "cpu":
        pytest.skip("starts from the CPU configurations")
    opt, params, rest = primed(case)
    on_gpu = [p.detach().cuda().requires_grad_(True) for p in params]
    gpu_opt = make_nnopt(case, on_gpu)
    gpu_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    for p in on_gpu:
        for key, value in gpu_opt.state[p].items():
            if isinstance(value, Tensor):
                expected = "cpu" if key == "step" else "cuda"
                assert value.device.type == expected, f"state[{key!r}] on {value.device}"
    for g in rest:
        assign_step(opt, params, g)
        assign_step(gpu_opt, on_gpu, [x.cuda() for x in g])
    assert_params_close([p.cpu() for p in on_gpu], params)
