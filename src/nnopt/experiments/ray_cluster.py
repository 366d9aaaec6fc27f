"""The Ray executor: every job is one Ray task, on a local cluster or the one at ``--address``.

A task runs the same job function as a local worker (``jobs._execute``), with ``threads``
set to its ``num_cpus`` (Ray sets ``OMP_NUM_THREADS=1`` in its workers; a run's thread count
is fixed, so a seed gives the same run bitwise on any worker). It works in the driver's
directory, so run directories and relative paths in recipes mean what they mean locally: on a
cluster, run from a directory every node mounts at the same path.

How results come back: a task's done (or error) event is its return value, so each run is
counted once however many times Ray retried it; its progress events go fire-and-forget to one
small actor that the driver drains between waits (a few times a second), which costs a task
nothing while it trains, where a Ray queue would make every put a round trip. Files would
have been the alternative, but a run writes its metrics only at evaluations.

Failures: a lost worker or node is a system failure, and Ray runs the task again
(``max_retries``); the job resumes from its run directory's last checkpoint, bitwise as an
undisturbed run would have gone. A job's own error (a bad recipe, a bug) is a returned error
event, which Ray does not retry, and stops the comparison as a local one does. On Ctrl-C or a
failure, every task still running is cancelled (its worker killed: the checkpoint stays, and
the same command resumes).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nnopt.errors import UsageError, UserError
from nnopt.experiments.jobs import DONE, PROGRESS_INTERVAL, Event, Job, _execute, raise_for

INSTALL = (
    "--executor ray needs Ray, which is not installed: pip install 'nnopt[ray]' "
    "(in this repository: make setup-ray)"
)
MAX_RETRIES = 3  # a lost worker's run is tried again this many times, from its checkpoint
STOP_WAIT = 30.0  # seconds to wait for cancelled tasks' workers to go (they hold run locks)


def require_ray() -> Any:
    """The ``ray`` module, or the one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(INSTALL) from None
    return ray


class Ray:
    """One Ray task per run, ``cpus_per_run`` cores (and torch threads) each."""

    name = "ray"

    def __init__(
        self, address: str | None = None, cpus_per_run: int = 1, max_retries: int = MAX_RETRIES
    ) -> None:
        if cpus_per_run < 1:
            raise UsageError(f"--cpus-per-run must be >= 1, got {cpus_per_run}")
        require_ray()  # said now, before a single run starts
        self.address, self.cpus_per_run, self.max_retries = address, cpus_per_run, max_retries

    def run(
        self, jobs: list[Job], workers: int, threads: int, on_event: Callable[[Event], None]
    ) -> None:
        """Run every job as a task (the cluster's cores decide how many at once: ``workers``
        and ``threads`` are local sizing, ignored here)."""
        if any(job.passed is not None for job in jobs):
            raise UsageError(
                "a model or data passed from Python cannot travel to a Ray cluster: name them "
                'in the recipe as factories ("module:function"), or use the local executor'
            )
        ray = require_ray()
        _connect(ray, self.address, self.cpus_per_run)
        inbox = ray.remote(num_cpus=0)(_Inbox).remote()
        task = ray.remote(
            num_cpus=self.cpus_per_run, max_retries=self.max_retries, retry_exceptions=False
        )(_run_task)
        cwd = os.getcwd()
        # A job is known by its run directory (unique in a batch): events come back with a
        # copy of it, and reach ``on_event`` with the caller's own.
        by_dir = {job.run_dir: job for job in jobs}
        pending = {
            task.options(name=f"nnopt_run {job.variant} seed {job.seed}").remote(
                job, self.cpus_per_run, cwd, inbox
            ): job
            for job in jobs
        }
        finished: set[str] = set()
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=PROGRESS_INTERVAL)
                for event in ray.get(inbox.take.remote()):
                    # (a progress event may arrive after its run's result: it is stale then)
                    if event.job.run_dir not in finished:
                        event.job = by_dir[event.job.run_dir]
                        on_event(event)
                for ref in ready:
                    job = pending.pop(ref)
                    event = self._result(ray, ref, job)
                    event.job = job
                    finished.add(job.run_dir)
                    on_event(event)
                    if event.kind == "error":
                        raise_for(event)
        finally:
            _stop(ray, list(pending), inbox)

    def _result(self, ray: Any, ref: Any, job: Job) -> Event:
        try:
            event: Event = ray.get(ref)
        except ray.exceptions.RayError as exc:  # retries spent: the cluster's failure
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            lost = f"lost on the Ray cluster, {self.max_retries} retries spent: {lines[0]}"
            return Event(job, "error", error=("os", lost))
        return event


def _connect(ray: Any, address: str | None, cpus_per_run: int) -> None:
    """Join the cluster (``address``; None: RAY_ADDRESS, else a new local one) unless this
    process already has; refuse a run size no node can hold (Ray would wait forever)."""
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)  # fmt: skip
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            where = address or os.environ.get("RAY_ADDRESS") or "(a new local one)"
            raise UserError(f"cannot start or join the Ray cluster {where}: {first}") from None
    largest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]), default=0)
    if largest < cpus_per_run:
        raise UsageError(
            f"--cpus-per-run {cpus_per_run}: no node of the Ray cluster has that many cores "
            f"(the largest has {largest:g})"
        )


def _stop(ray: Any, refs: list[Any], inbox: Any) -> None:
    """Cancel the tasks still running and wait for their workers to go, so their run
    directories are unlocked (the same command, run again at once, resumes them)."""
    try:
        for ref in refs:
            ray.cancel(ref, force=True)
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=STOP_WAIT)
        ray.kill(inbox)
    except Exception:  # the cluster is gone already: nothing left to stop
        pass


class _Inbox:
    """The actor progress events go through: tasks append, the driver takes them all."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def put(self, event: Event) -> None:
        self.events.append(event)

    def take(self) -> list[Event]:
        taken, self.events = self.events, []
        return taken


# --- the task, on a Ray worker ------------------------------------------------------------


def _run_task(job: Job, threads: int, cwd: str, inbox: Any) -> Event:
    """One job on a Ray worker: its progress to ``inbox``, its done or error event returned."""
    try:
        os.chdir(cwd)  # the driver's directory: relative run and data paths as in a local run
    except OSError:
        missing = f"{cwd} does not exist on Ray node {socket.gethostname()}"
        advice = "run from a directory every node mounts at the same path"
        return Event(job, "error", error=("user", f"{missing}: {advice}"))
    done = _finished(job)
    if done is not None:  # a retry of a run that finished before its worker was lost
        return done
    final: list[Event] = []

    def emit(event: Event) -> None:
        if event.kind == "progress":
            inbox.put.remote(event)  # fire-and-forget: the run does not wait on the driver
        else:
            final.append(event)

    _execute(job, threads, emit)
    return final[-1]


def _finished(job: Job) -> Event | None:
    """The done event of a run its directory already holds finished (nothing is run again)."""
    import json

    path = Path(job.run_dir) / "summary.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    if summary.get("status") not in DONE:
        return None
    steps, total = summary.get("steps", 0), summary.get("total_steps", 0)
    held_out = summary.get("held_out", "validation")
    return Event(job, "done", steps, total, summary.get("final"), summary, held_out=held_out)
