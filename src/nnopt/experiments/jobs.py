"""Run compare's (variant, seed) jobs: up to N worker processes, live progress, clean stops
(or on another executor: ``nnopt.experiments.executors``, e.g. a Ray cluster).

Each job is one ``train`` call in a forked worker (or in this process for ``workers=1``),
reporting through a pipe: ``progress`` events (throttled to a few a second) and one ``done``
or ``error``. The guarantees, each tested with real processes and signals:

- a worker dies with its parent (``PR_SET_PDEATHSIG`` on Linux, and a watcher thread that
  polls the parent's pid everywhere), so ``kill -9`` of ``nnopt compare`` leaves no worker
  training queued runs;
- Ctrl-C (or any error) terminates the running workers and starts nothing more; finished runs
  and the last checkpoint of unfinished ones stay, and the same command resumes them;
- a job that fails stops the comparison with that job's one-line message, of the same kind
  (a user error, the machine's refusal, or a bug with the worker's traceback).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from nnopt.errors import UserError, describe

PROGRESS_INTERVAL = 0.25  # seconds between two progress events of one job
# The statuses of a run that ended by itself (a finished run is read back, not run again).
DONE = ("finished", "diverged")


@dataclass(frozen=True)
class Passed:
    """Objects passed from Python (``nnopt.compare(model=..., data=...)``): a forked worker
    inherits them, nothing is pickled."""

    model: Any = None  # an nn.Module (copied for each run) or a function building one
    data: Any = None  # what a data factory returns


@dataclass(frozen=True)
class Job:
    variant: str
    seed: int
    recipe_text: str  # the recipe as TOML (what a worker process receives)
    run_dir: str
    passed: Passed | None = field(default=None, compare=False)

    def __reduce__(self) -> tuple[Any, tuple[str, int, str, str]]:
        # A job travels back in its events: without the passed objects, which the parent
        # has (pickling tensors would hand file descriptors across a closing pipe).
        return Job, (self.variant, self.seed, self.recipe_text, self.run_dir)


@dataclass
class Event:
    """What a job reports: ``kind`` is "progress", "done" or "error"."""

    job: Job
    kind: str
    step: int = 0
    total: int = 0
    row: dict[str, Any] | None = None  # the last metrics row (progress, done)
    summary: dict[str, Any] | None = None  # done
    error: tuple[str, str] | None = None  # (user | os | bug, message)
    held_out: str = "validation"  # what the row's val_* are called (nnopt.names)


class JobFailed(Exception):
    """A job's error, raised again in the parent as its own kind (see ``raise_for``)."""


def run_local(
    jobs: list[Job], workers: int, threads: int, on_event: Callable[[Event], None]
) -> None:
    """The local executor: forked workers, at most ``workers`` at once (1: this process)."""
    if workers == 1:
        for job in jobs:
            failure = _execute(job, threads, on_event)
            if failure is not None:
                raise_for(failure)
        return
    context = multiprocessing.get_context("fork")
    pending = list(reversed(jobs))
    running: dict[Connection, tuple[Any, Job]] = {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                job = pending.pop()
                receive, send = context.Pipe(duplex=False)
                process = context.Process(
                    target=_worker, args=(job, threads, send, os.getpid()), daemon=True
                )
                process.start()
                send.close()  # the parent's copy: EOF on `receive` once the worker is gone
                running[receive] = (process, job)
            for conn in wait(list(running)):
                process, job = running[conn]
                try:
                    event = conn.recv()
                except EOFError:
                    del running[conn]
                    process.join()
                    if process.exitcode != 0:
                        died = f"its worker died (exit status {process.exitcode})"
                        raise_for(Event(job, "error", error=("bug", died)))
                    continue
                on_event(event)
                if event.kind == "error":
                    raise_for(event)
    finally:
        for process, _ in running.values():
            if process.is_alive():
                process.terminate()
        for process, _ in running.values():
            process.join()


def raise_for(event: Event) -> None:
    """Raise a job's error in this process, keeping its kind (see ``nnopt.errors``)."""
    assert event.error is not None
    kind, message = event.error
    where = f"{event.job.variant} seed {event.job.seed}"
    if kind == "user":
        raise UserError(f"{where}: {message}")
    if kind == "os":
        raise OSError(f"{where}: {message}")
    raise JobFailed(f"{where} failed:\n{message}")


# --- the worker side ----------------------------------------------------------------------


def _worker(job: Job, threads: int, send: Connection, parent: int) -> None:
    """A forked worker: one job, its events down the pipe, gone when its parent is."""
    _die_with_parent(parent)
    # Ctrl-C reaches the whole process group; the parent decides, and terminates us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    failure = _execute(job, threads, send.send)
    send.close()
    os._exit(0 if failure is None else 1)  # no atexit handlers inherited from the parent


def _execute(job: Job, threads: int, emit: Callable[[Event], None]) -> Event | None:
    """Train one job, emitting its progress and then its done or error event; the error
    event is also returned (None when the job finished)."""
    import torch

    from nnopt.recipe import Recipe
    from nnopt.training import train
    from nnopt.training.checkpoint import CHECKPOINT_NAME

    if threads:
        torch.set_num_threads(threads)
    last: dict[str, Any] = {"time": 0.0, "row": None, "held_out": "validation"}

    def on_step(step: int, total: int, row: dict[str, Any] | None, held_out: str) -> None:
        if row is not None:
            last["row"] = row
        last["held_out"] = held_out
        now = time.monotonic()
        if row is not None or now - last["time"] >= PROGRESS_INTERVAL:
            last["time"] = now
            emit(Event(job, "progress", step, total, last["row"], held_out=held_out))

    try:
        recipe = Recipe.loads(job.recipe_text)
        resume = (Path(job.run_dir) / CHECKPOINT_NAME).is_file()
        objects = {}
        if job.passed is not None:  # (only then: train's other callers pass no objects)
            objects = {"model": _model_for(job.passed.model, recipe.seed), "data": job.passed.data}
        result = train(recipe, job.run_dir, resume=resume, quiet=True, on_step=on_step, **objects)
    except UserError as exc:
        failure = Event(job, "error", error=("user", str(exc)))
    except OSError as exc:
        failure = Event(job, "error", error=("os", describe(exc)))
    except Exception:
        failure = Event(job, "error", error=("bug", traceback.format_exc()))
    else:
        summary = result.summary
        emit(Event(job, "done", summary["steps"], summary["total_steps"], last["row"], summary,
                   held_out=summary.get("held_out", last["held_out"])))  # fmt: skip
        return None
    emit(failure)
    return failure


def _die_with_parent(parent: int) -> None:
    """Exit as soon as the parent process is gone (it may have been killed with -9)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: Linux kills us with it
    except (OSError, AttributeError):
        pass  # not Linux: the watcher below still notices
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="nnopt-parent-watch").start()


def _model_for(model: Any, seed: int) -> Any:
    """A run's own model: a copy of a module (every seed starts from its weights), or the
    function's model built under the run's seed (each seed its own initial weights)."""
    import copy

    import torch

    if model is None:
        return None
    if isinstance(model, torch.nn.Module):
        return copy.deepcopy(model)
    torch.manual_seed(seed)
    made = model()
    if not isinstance(made, torch.nn.Module):
        raise UserError(
            f"model: the function passed to nnopt.compare returned a {type(made).__name__}, "
            "expected a torch.nn.Module"
        )
    return made
