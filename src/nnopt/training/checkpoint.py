"""The state of a run, and the checkpoints that hold it: written atomically, resumed exactly."""

from __future__ import annotations

import contextlib
import io
import math
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nnopt import atomic
from nnopt.errors import CheckpointError
from nnopt.rng import plain_rng_state
from nnopt.training import unpickled

if TYPE_CHECKING:
    from nnopt.data.batches import Batches
    from nnopt.recipe import Recipe

CHECKPOINT_NAME = "checkpoint.pt"
# 4: RNG states as tensors and plain values, so every checkpoint loads with
# torch.load(weights_only=True); older ones resume only through --trust-checkpoint, which
# converts them. 3: the recipe's TOML under "recipe" (a resume checks it). 2: the run state
# under "run". 1 had its fields at the top level, the loss window as a pair.
CHECKPOINT_FORMAT = 4
# What every format holds; a file without them is not an nnopt checkpoint.
REQUIRED = ("model", "optimizer", "rng")


@dataclass
class RunState:
    """Where a run is: what the loop carries from step to step, saved in every checkpoint.

    Beside it a checkpoint holds the model, the optimizer (schedule step and plateau state
    included), every RNG and where the run is in its data (``data``: epoch, position in it,
    the data's size, checked on resume); the data order itself is a function of the step.
    """

    step: int = 0  # optimizer steps taken
    history: list[dict[str, Any]] = field(default_factory=list)  # one metrics row per evaluation
    elapsed: float = 0.0  # wall time over every resumption, as of the last save
    loss_sum: float = 0.0  # training losses since the last evaluation...
    loss_count: int = 0  # ...and how many there were

    def add_loss(self, loss: float) -> None:
        self.loss_sum += loss
        self.loss_count += 1

    def take_train_loss(self) -> float:
        """The mean training loss since the last evaluation (NaN if none), starting a new one."""
        mean = self.loss_sum / self.loss_count if self.loss_count else math.nan
        self.loss_sum, self.loss_count = 0.0, 0
        return mean

    def to_checkpoint(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_checkpoint(cls, payload: dict[str, Any]) -> RunState:
        if payload.get("format", 1) == 1:
            loss_sum, loss_count = payload["window"]
            run = {**payload, "loss_sum": loss_sum, "loss_count": loss_count}
        else:
            run = payload["run"]
        return cls(**{f.name: run[f.name] for f in fields(cls)})


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Readers (and a resumed run) see the previous checkpoint or this one, never half of it."""
    atomic.save_torch(path, payload)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C waits for the block to end (in the main thread; elsewhere nothing changes).

    Around a save and the note of what it saved, so that the step an interrupted run says it
    kept is the step of the file on disk (a SIGINT between the two once made them differ).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, Any]] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(*caught[0])
            else:
                raise KeyboardInterrupt


def load_checkpoint(path: Path, *, trust: bool = False, rewrite: bool = True) -> dict[str, Any]:
    """The payload of an nnopt checkpoint, or a :class:`CheckpointError` saying why not.

    Every checkpoint is read with ``torch.load(weights_only=True)``: tensors and plain values
    only, so a file from elsewhere cannot run code as it loads. A file that holds anything else
    is refused in one line naming what it holds (nothing of it is executed), unless ``trust``:
    then it is unpickled once (say, a checkpoint of an older nnopt, which pickled NumPy
    arrays), converted to today's format and, when ``rewrite``, written back in its place.
    A file that torch cannot read (empty, truncated, garbage) and one that is not an nnopt
    checkpoint both get one line naming the file and what to do; ``nnopt --debug`` shows the
    underlying error.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():
            # (torch warns of a bare pickle's protocol before refusing it: the refusal says it)
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            payload: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise  # the machine's refusal (permissions, I/O error): reported as such
    except Exception as exc:  # UnpicklingError, EOFError, RuntimeError (bad zip), ...
        found = unpickled.unsafe_globals(path, exc)
        if not found:
            raise CheckpointError(_unreadable(path, exc)) from exc
        if not trust:
            raise CheckpointError(_refusal(path, found)) from exc
        return _convert_trusted(path, rewrite)
    _check_required(path, payload)
    return payload


def _refusal(path: Path, found: list[str]) -> str:
    if unpickled.is_old_nnopt(found):
        return (
            f"{path} was written by an older nnopt (checkpoint format 3 or earlier: it holds "
            "pickled NumPy arrays, and nnopt now loads only tensors and plain values); if you "
            f"wrote it, convert it once: nnopt train --resume {path.parent} --trust-checkpoint"
        )
    return (
        f"{path} is not a plain nnopt checkpoint: it holds {unpickled.describe(found)}; nnopt "
        "loads only tensors and plain values, so it was not executed"
    )


def _unreadable(path: Path, exc: Exception) -> str:
    text = str(exc).strip()
    reason = text.splitlines()[0].split(". ")[0] if text else "no detail"
    return (
        f"{path} is unreadable ({type(exc).__name__}: {reason}); it cannot be resumed: "
        f"start the run afresh (delete {path.parent} or choose another --out)"
    )


def _check_required(path: Path, payload: Any) -> None:
    missing = [key for key in REQUIRED if not isinstance(payload, dict) or key not in payload]
    if missing:
        raise CheckpointError(
            f"{path} is not an nnopt checkpoint (no {', '.join(map(repr, missing))}); it cannot "
            f"be resumed: start the run afresh (delete {path.parent} or choose another --out)"
        )


def _convert_trusted(path: Path, rewrite: bool) -> dict[str, Any]:
    """Unpickle a file the user trusts, once, and return (and, when ``rewrite``, write back
    atomically) the same checkpoint as tensors and plain values, which later loads read safely."""
    print(
        f"nnopt: loading {path} with pickle because --trust-checkpoint was given: only do this "
        "for files you wrote (it is rewritten as a plain checkpoint, which needs no trust)",
        file=sys.stderr,
    )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except OSError:
        raise
    except Exception as exc:
        raise CheckpointError(_unreadable(path, exc)) from exc
    _check_required(path, payload)
    plain = {
        "format": CHECKPOINT_FORMAT,
        **{key: payload[key] for key in ("recipe", "world_size", "data") if key in payload},
        "model": payload["model"],
        "optimizer": payload["optimizer"],
        "rng": plain_rng_state(payload["rng"]),
        "run": RunState.from_checkpoint(payload).to_checkpoint(),
    }
    buffer = io.BytesIO()
    torch.save(plain, buffer)
    buffer.seek(0)
    try:  # what is written must load safely, or the conversion was not one
        converted: dict[str, Any] = torch.load(buffer, map_location="cpu", weights_only=True)
    except Exception as exc:
        found = unpickled.unsafe_globals(buffer.getvalue(), exc)
        what = unpickled.describe(found) if found else "objects torch does not load safely"
        raise CheckpointError(
            f"{path} cannot be converted to a plain checkpoint: beside nnopt's values it holds "
            f"{what}; it was left as it was"
        ) from exc
    if rewrite:
        atomic.write_bytes(path, buffer.getvalue())
    return converted


def check_same_recipe(
    recipe: Recipe, payload: dict[str, Any], run_dir: Path, allowed: frozenset[str] = frozenset()
) -> None:
    """A run resumes only under the recipe it started with; else one line per changed field.

    ``allowed`` are the fields the user changed on purpose (``--resume RUN --set KEY=V``):
    those may differ. The checkpoint records its recipe (format 3); older ones are held to
    ``recipe.toml``, the copy the run wrote when it started.
    """
    from nnopt.recipe import Recipe  # noqa: F811 (the class at run time; above, its type)

    if "recipe" in payload:
        started = Recipe.loads(payload["recipe"])
    elif (run_dir / "recipe.toml").is_file():
        started = Recipe.load(run_dir / "recipe.toml")
    else:
        return
    changes = recipe_changes(started, recipe, allowed)
    if not changes:
        return
    raise CheckpointError(
        f"{run_dir} was started with another recipe ({'; '.join(changes) or 'it differs'}): "
        "a run resumes only under its own recipe; restore it, change a field on purpose with "
        "--resume RUN --set KEY=VALUE, or start a new run with the new recipe (another --out)"
    )


def recipe_changes(
    started: Recipe, recipe: Recipe, allowed: frozenset[str] = frozenset()
) -> list[str]:
    """One line per field that differs between the recipe a run started with and ``recipe``,
    leaving out ``allowed`` and the fields that only say how the run executes."""
    if started == recipe:
        return []
    before, now = _flatten(started.to_dict()), _flatten(recipe.to_dict())
    allowed = allowed | {_LINKED[key] for key in allowed if key in _LINKED} | HOW_TO_RUN
    return [
        f"{key}: {before.get(key, '(unset)')!r} when the run started, "
        f"{now.get(key, '(unset)')!r} now"
        for key in sorted(before.keys() | now.keys())
        if before.get(key) != now.get(key) and key not in allowed
    ]


# Fields that say how a run is executed, not what it computes: a checkpoint written with
# sharded state resumes unsharded, on another device or thread count (tests/test_distributed),
# compiled or not (the same computation, within float rounding, like another thread count).
# (data.workers and pin_memory: every streamed batch is read under its step's seed, so the
# numbers do not depend on them; tests/test_streamed.py.)
HOW_TO_RUN = frozenset(
    {"train.shard_state", "train.device", "train.threads", "train.compile", "data.workers",
     "data.pin_memory"}
)  # fmt: skip
# A run's length is train.steps or train.epochs: setting one unsets the other.
_LINKED = {"train.steps": "train.epochs", "train.epochs": "train.steps"}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def data_position(batches: Batches, step: int) -> dict[str, int]:
    """Where a run is in its data (a checkpoint's ``data``): the epoch, the batch within it,
    and the data's size; the order of the rest of the run is a function of these and the seed."""
    per_epoch = batches.batches_per_epoch
    epoch, position = divmod(step, per_epoch)
    return {"epoch": epoch, "position": position, "batches_per_epoch": per_epoch,
            "examples": batches.n}  # fmt: skip


def check_same_data(saved: dict[str, int] | None, batches: Batches, run_dir: Path | None) -> None:
    """A resume on data of another size is refused: it would feed other batches than the run's."""
    if saved is None:  # a checkpoint from before format 3 recorded it
        return
    if saved["examples"] != batches.n:
        raise CheckpointError(
            f"{run_dir}: the run started on {saved['examples']} training examples and "
            f"the data now has {batches.n}; resuming would feed other batches than the "
            "run's: restore the data, or start a new run"
        )
