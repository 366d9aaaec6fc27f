"""Where a batch of runs executes: a seam below ``run_jobs``, so every caller of the job runner
(``compare``, and whatever else submits runs) gets every executor.

An executor takes the jobs and reports each one's events (progress, then done or error) to
``on_event`` as they happen; it returns when all are done and raises on the first failure
(``jobs.raise_for``). Whatever runs a job writes its run directory the same way (the trainer
does), so the executor changes where runs happen, never what they write.

- ``Local``: forked worker processes on this machine (the default; ``jobs.run_local``);
- ``Ray`` (``nnopt.experiments.ray_cluster``): one Ray task per run, on a local or remote cluster
  (the optional extra ``nnopt[ray]``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from nnopt.errors import UsageError
from nnopt.experiments.jobs import Event, Job, run_local

NAMES = ("local", "ray")


class Executor(Protocol):
    """Runs jobs; ``workers`` and ``threads`` are the caller's local sizing (runs at once,
    threads per run), which an executor with its own resources may ignore."""

    name: str

    def run(
        self, jobs: list[Job], workers: int, threads: int, on_event: Callable[[Event], None]
    ) -> None: ...


class Local:
    """Forked worker processes on this machine: at most ``workers`` runs at once."""

    name = "local"

    def run(
        self, jobs: list[Job], workers: int, threads: int, on_event: Callable[[Event], None]
    ) -> None:
        run_local(jobs, workers, threads, on_event)


def run_jobs(
    jobs: list[Job],
    workers: int,
    threads: int,
    on_event: Callable[[Event], None],
    executor: Executor | None = None,
) -> None:
    """Run every job, at most ``workers`` at once; ``on_event`` sees every event.

    ``executor`` says where: None is local worker processes."""
    (executor or Local()).run(jobs, workers, threads, on_event)


def make_executor(
    name: str = "local", *, address: str | None = None, cpus_per_run: int | None = None
) -> Executor:
    """The executor called ``name``, checked now (before any run starts): Ray's options only
    with Ray, and Ray installed."""
    if name not in NAMES:
        raise UsageError(f"--executor must be one of {', '.join(NAMES)}, got {name!r}")
    if name == "local":
        given = [o for o, v in (("--address", address), ("--cpus-per-run", cpus_per_run)) if v]
        if given:
            raise UsageError(f"{' and '.join(given)} need --executor ray")
        return Local()
    from nnopt.experiments.ray_cluster import Ray

    return Ray(address=address, cpus_per_run=1 if cpus_per_run is None else cpus_per_run)
