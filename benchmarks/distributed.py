"""Throughput and per-rank memory at 1 and 2 ranks (torchrun, gloo on CPU).

    python benchmarks/distributed.py [--steps 300] [--hidden 512]

For each setup (1 process; 2 ranks with DDP; 2 ranks with sharded optimizer state) it
launches torchrun, trains an MLP on MNIST-1D and prints steps/s, the optimizer-state bytes
each rank holds and each rank's peak resident memory. On a 2-core machine expect little
speed-up: the point is correctness and the halved optimizer state.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = """
name = "dist-bench"
[data]
name = "mnist1d"
[model]
kind = "mlp"
hidden = [{hidden}, {hidden}]
[optimizer]
name = "adam"
lr = 1e-3
[train]
batch_size = 128
steps = {steps}
eval_every = {steps}
shard_state = {shard}
"""


def worker(recipe_path: str, out: str) -> None:
    """Runs inside torchrun: train, then report this rank's numbers as JSON."""
    import torch.distributed as dist

    from nnopt.distributed import ShardedOptimizer
    from nnopt.recipe import Recipe
    from nnopt.training import Trainer

    trainer = Trainer(Recipe.load(recipe_path))
    start = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - start
    opt = trainer.optimizer_for_step
    if isinstance(opt, ShardedOptimizer):
        state_bytes = opt.state_bytes()
    else:
        state_bytes = sum(
            t.numel() * t.element_size()
            for s in opt.state.values()
            for t in s.values()
            if hasattr(t, "numel") and t.dim() > 0
        )
    rank = dist.get_rank() if dist.is_initialized() else 0
    report = {
        "rank": rank,
        "seconds": seconds,
        "steps": trainer.parts.total_steps,
        "state_bytes": state_bytes,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    Path(out, f"rank{rank}.json").write_text(json.dumps(report))


def launch(nproc: int, shard: bool, steps: int, hidden: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp, "recipe.toml")
        recipe.write_text(RECIPE.format(hidden=hidden, steps=steps, shard=str(shard).lower()))
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
        command += ["--standalone", __file__, "--worker", str(recipe), tmp]
        env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // nproc)))
        subprocess.run(command, check=True, env=env, capture_output=True)
        return [json.loads(Path(tmp, f"rank{r}.json").read_text()) for r in range(nproc)]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=512)
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"MLP 40-{args.hidden}-{args.hidden}-10 on MNIST-1D, {args.steps} steps")
    for column in ("setup", "steps/s", "optimizer state per rank (KiB)", "peak RSS per rank (MiB)"):
        table.add_column(column, justify="left" if column == "setup" else "right")
    for label, nproc, shard in (
        ("1 process", 1, False),
        ("2 ranks, DDP", 2, False),
        ("2 ranks, sharded state", 2, True),
    ):
        reports = launch(nproc, shard, args.steps, args.hidden)
        seconds = max(r["seconds"] for r in reports)
        table.add_row(
            label,
            f"{reports[0]['steps'] / seconds:.0f}",
            " / ".join(f"{r['state_bytes'] / 1024:.0f}" for r in reports),
            " / ".join(f"{r['peak_rss_mb']:.0f}" for r in reports),
        )
    Console().print(table)


if __name__ == "__main__":
    main()
