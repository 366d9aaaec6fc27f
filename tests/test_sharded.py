"""ZeRO-1 sharded optimizer state: same trajectory as unsharded, half the state per rank."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

import nnopt
from nnopt.distributed import ShardedOptimizer
from tests.dist_helpers import run_ranks

STEPS = 12


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(7, 13), nn.Tanh(), nn.Linear(13, 3))


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(STEPS, 64, 7, generator=g), torch.randn(STEPS, 64, 3, generator=g)


def make_opt(params):
    return nnopt.Adam(params, lr=1e-2, weight_decay=0.1, l1=1e-3)


def single_process(steps: int) -> tuple[list[torch.Tensor], dict]:
    x, y = data()
    model = make_model()
    opt = make_opt(model.parameters())
    for t in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x[t]), y[t]).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()], opt.state_dict()


def sharded_worker(rank: int, world: int, resume_state: dict | None) -> dict:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _sharded_run(rank, world, resume_state)
    result["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
    return result


def _sharded_run(rank: int, world: int, resume_state: dict | None) -> dict:
    x, y = data()
    model = make_model()
    opt = ShardedOptimizer(make_opt(model.parameters()))
    start = 0
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        opt.load_state_dict(resume_state["optimizer"])
        start = STEPS // 2
    bytes_before_save = None
    for t in range(start, STEPS):
        opt.zero_grad()
        # Each rank takes its slice of the global batch; reduce-scatter averages the halves.
        xs, ys = x[t].chunk(world)[rank], y[t].chunk(world)[rank]
        nn.functional.mse_loss(model(xs), ys).backward()
        opt.step()
        if t == STEPS // 2 - 1:
            bytes_before_save = opt.state_bytes()
            # state_dict() holds references to live tensors: copy what must stay as it is.
            half = copy.deepcopy({"model": model.state_dict(), "optimizer": opt.state_dict()})
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "state_bytes": bytes_before_save if resume_state is None else opt.state_bytes(),
        "half": half if resume_state is None else None,
        "full": opt.state_dict(),
    }


@pytest.fixture(scope="module")
def two_ranks():
    return run_ranks(sharded_worker, 2, None)


@pytest.mark.slow  # two real ranks
def test_sharded_matches_unsharded_trajectory(two_ranks):
    expected, _ = single_process(STEPS)
    for rank_result in two_ranks:
        for a, b in zip(rank_result["params"], expected, strict=True):
            # The only difference is the order of the gradient sum (two halves, then / 2),
            # a few float32 ulps per step.
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # two real ranks
def test_the_sharded_collectives_warn_nothing(two_ranks):
    """torch 2.13 deprecates reduce_scatter_tensor / all_gather_into_tensor (FutureWarning)."""
    assert [r["warnings"] for r in two_ranks] == [[], []]


@pytest.mark.slow  # two real ranks
def test_sharded_state_is_halved_per_rank(two_ranks):
    n_params = sum(p.numel() for p in make_model().parameters())  # 146, even: no padding
    full_bytes = 2 * n_params * 4  # exp_avg and exp_avg_sq, float32
    assert n_params == 146
    assert [r["state_bytes"] for r in two_ranks] == [full_bytes // 2, full_bytes // 2]


@pytest.mark.slow  # two real ranks
def test_checkpoint_from_two_ranks_resumes_on_one_and_two(two_ranks):
    expected, _ = single_process(STEPS)
    half = two_ranks[0]["half"]
    # one process, plain optimizer, from the gathered state dict
    model = make_model()
    model.load_state_dict(half["model"])
    opt = make_opt(model.parameters())
    opt.load_state_dict(half["optimizer"])
    x, y = data()
    for t in range(STEPS // 2, STEPS):
        opt.zero_grad()
        nn.functional.mse_loss(model(x[t]), y[t]).backward()
        opt.step()
    for a, b in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(a.detach(), b, rtol=1e-5, atol=1e-6)
    # two ranks again
    for rank_result in run_ranks(sharded_worker, 2, half):
        for a, b in zip(rank_result["params"], expected, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # two real ranks
def test_gathered_state_dict_equals_unsharded(two_ranks):
    _, expected = single_process(STEPS)
    gathered = two_ranks[0]["full"]
    assert gathered["nnopt"]["step"] == expected["nnopt"]["step"] == STEPS
    for index, state in expected["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(
                gathered["state"][index][key], state[key], rtol=1e-4, atol=1e-7
            )
        assert float(gathered["state"][index]["step"]) == STEPS


def test_sharding_without_a_process_group_says_how_to_launch():
    with pytest.raises(ValueError, match="torchrun"):
        ShardedOptimizer(make_opt(make_model().parameters()))


def _train_with_scheduler_and_scaler(model, opt, steps, rank=0, world=1):
    """torch's StepLR and GradScaler driving the optimizer (sharded or not)."""
    x, y = data()
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    lrs = []
    for t in range(steps):
        opt.zero_grad()
        xs, ys = x[t].chunk(world)[rank], y[t].chunk(world)[rank]
        scaler.scale(nn.functional.mse_loss(model(xs), ys)).backward()
        scaler.step(opt)
        scaler.update()
        scheduler.step()
        lrs.append(opt.param_groups[0]["lr"])
    return [p.detach().clone() for p in model.parameters()], lrs


def scheduler_worker(rank: int, world: int) -> dict:
    model = make_model()
    opt = ShardedOptimizer(make_opt(model.parameters()))
    assert isinstance(opt, torch.optim.Optimizer)
    params, lrs = _train_with_scheduler_and_scaler(model, opt, STEPS, rank, world)
    return {"params": params, "lrs": lrs}


@pytest.mark.slow  # two real ranks
def test_torch_scheduler_and_grad_scaler_drive_the_sharded_optimizer():
    model = make_model()
    expected, expected_lrs = _train_with_scheduler_and_scaler(
        model, make_opt(model.parameters()), STEPS
    )
    assert expected_lrs[-1] == pytest.approx(1e-2 * 0.5**3)
    for result in run_ranks(scheduler_worker, 2):
        assert result["lrs"] == expected_lrs
        for a, b in zip(result["params"], expected, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
