"""torch.distributed (issue 10, point 5, case 7): DDP, ZeroRedundancyOptimizer and FSDP2.

Two CPU processes on the gloo backend (fresh processes, file rendezvous, no port; a
collective that waits over 60 s raises instead of hanging the suite). Each spawn trains
twice in the same process group, once with torch.optim and once with nnopt (identical call),
on per-rank data; the final parameters, gathered in full, are compared, and both ranks must
hold bitwise the same parameters.
"""

from __future__ import annotations

import datetime
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
from torch import nn

from tests.clients.helpers import Recorder, optimizer_class, tensors_of
from tests.dist_helpers import spawn_ranks

STEPS = 5


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 4)
    )


def _batches(rank: int):
    g = torch.Generator().manual_seed(100 + rank)
    return [(torch.randn(8, 16, generator=g), torch.randn(8, 4, generator=g)) for _ in range(STEPS)]


def _train(model, opt, rank):
    for x, y in _batches(rank):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def _ddp(rank, world, lib):
    model = nn.parallel.DistributedDataParallel(_model())
    opt = optimizer_class(lib, "Adam")(model.parameters(), lr=1e-2, weight_decay=1e-2)
    _train(model, opt, rank)
    return tensors_of(model.module)


def _zero(rank, world, lib, bucket_view):
    from torch.distributed.optim import ZeroRedundancyOptimizer

    model = nn.parallel.DistributedDataParallel(_model())
    opt = ZeroRedundancyOptimizer(
        model.parameters(),
        optimizer_class=optimizer_class(lib, "Adam"),
        parameters_as_bucket_view=bucket_view,
        lr=1e-2,  # no weight_decay: what this case tests is the sharding, not the decay
    )
    _train(model, opt, rank)
    opt.consolidate_state_dict(to=0)
    if rank == 0:
        assert len(opt.state_dict()["state"]) == len(list(model.parameters()))
    return tensors_of(model.module)


def _fsdp2(rank, world, lib):
    from torch.distributed.fsdp import fully_shard

    model = _model()
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    fully_shard(model)
    opt = optimizer_class(lib, "AdamW")(model.parameters())
    _train(model, opt, rank)
    return tensors_of(model)  # full_tensor() of each DTensor


def _both(rank, world, fn_name, *args):
    fn = globals()[fn_name]
    out = {}
    for lib in ("torch", "nnopt"):
        try:
            out[lib] = fn(rank, world, lib, *args)
        except Exception as e:  # reported by the parent; the process group stays usable
            out[lib] = f"{type(e).__name__}: {e}"
        dist.barrier()
    return out


def _entry(rank, world, init_file, out_dir, fn_name, args):
    os.environ["OMP_NUM_THREADS"] = "1"
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        torch.save(_both(rank, world, fn_name, *args), os.path.join(out_dir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run_ranks(fn_name: str, world: int, *args):
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        paths = [os.path.join(tmp, f"{r}.pt") for r in range(world)]
        spawn_ranks(_entry, (world, init_file, tmp, fn_name, args), world, paths)
        return [torch.load(p) for p in paths]


def _check(record: Recorder, fn_name: str, *args) -> None:
    ranks = run_ranks(fn_name, 2, *args)
    for lib in ("torch", "nnopt"):
        for r in ranks:
            assert not isinstance(r[lib], str), f"{lib} run failed: {r[lib]}"
    record.bitwise("torch: rank 0 vs rank 1 params", ranks[0]["torch"], ranks[1]["torch"])
    record.close("final params (rank 0)", ranks[0]["torch"], ranks[0]["nnopt"])
    record.bitwise("nnopt: rank 0 vs rank 1 params", ranks[0]["nnopt"], ranks[1]["nnopt"])


def test_ddp(record):
    """Repro 7a: DistributedDataParallel + X(model.parameters())."""
    _check(record, "_ddp")


@pytest.mark.parametrize("bucket_view", [False, True], ids=["plain", "bucket_view"])
def test_zero_redundancy_optimizer(bucket_view, record):
    """Repro 7b: ZeroRedundancyOptimizer(optimizer_class=nnopt.Adam), with and without
    parameters_as_bucket_view=True (ZeRO then re-points each p.data into its own buckets)."""
    _check(record, "_zero", bucket_view)


def test_fsdp2_fully_shard(record):
    """Repro 7c: FSDP2 fully_shard, then nnopt.AdamW(model.parameters()) over DTensors."""
    _check(record, "_fsdp2")
