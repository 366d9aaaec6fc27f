"""The errors a person can fix: each is reported as its message, never as a traceback.

A leaf module (it imports nothing from nnopt), so every layer may raise these. The command line
(``nnopt.cli``) sorts every failure into one of three kinds:

- a :class:`UserError` (what was asked for is wrong): ``nnopt COMMAND: error: MESSAGE``, exit 2;
- an ``OSError`` (the machine refused: a full disk, a read-only file system, a permission):
  the same one line from :func:`describe`, naming the file, exit 1;
- anything else is a bug (in nnopt or in user code): its traceback, a request to report it,
  exit 70.

``nnopt --debug`` or ``NNOPT_DEBUG=1`` shows the traceback of the first two kinds too.

The subclasses are also ``ValueError`` (and ``DataFileNotFound`` a ``FileNotFoundError``), so
code that caught those before still does.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable


class UserError(Exception):
    """A mistake in what was asked for: a recipe, a command-line value, a data set or file."""


class UsageError(UserError, ValueError):
    """A bad command-line value or combination (``--seeds 0``, ``--vary`` without values)."""


class DataError(UserError, ValueError):
    """Data that cannot be loaded or used: an unknown set, a bad option, a malformed file."""


class DataFileNotFound(DataError, FileNotFoundError):
    """A data file that is not there."""


class RecipeError(UserError, ValueError):
    """A recipe that cannot be used: one line per problem, each naming the field."""

    def __init__(self, problems: str | Iterable[str]):
        lines = [problems] if isinstance(problems, str) else list(problems)
        self.problems: list[str] = [ln for text in lines for ln in text.splitlines() if ln]
        super().__init__("\n".join(self.problems))

    def prefixed(self, prefix: str) -> RecipeError:
        """The same problems, each line starting with ``prefix: `` (e.g. the file name)."""
        return RecipeError(f"{prefix}: {line}" for line in self.problems)


class CheckpointError(UserError):
    """A checkpoint that cannot be read, or that does not belong to the run resumed from it."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run (still a KeyboardInterrupt): the step it stopped at and the step of
    the checkpoint kept (None: none was written yet), so the line can say what was lost."""

    def __init__(self, step: int, kept: int | None, resume: str = ""):
        self.step, self.kept, self.resume = step, kept, resume
        super().__init__(self.describe())

    def describe(self) -> str:
        """``interrupted at step 2724; the checkpoint of step 2500 is kept, the 224 steps after
        it are lost``, and how to continue when ``resume`` (a command, a Python call) is known."""
        if self.kept is None:
            return f"interrupted at step {self.step}, before the first checkpoint: nothing kept"
        lost = self.step - self.kept
        text = f"interrupted at step {self.step}; the checkpoint of step {self.kept} is kept"
        if lost:
            text += f", the {lost} step{'s' if lost > 1 else ''} after it are lost"
        return text + (f"; continue with: {self.resume}" if self.resume else "")


# errno -> what to do about it, appended to the system's own message.
_REMEDIES = {
    errno.ENOSPC: "free some space and run again (a failed write leaves the last checkpoint "
    "intact: `nnopt train --resume RUN_DIR` continues from it)",
    errno.EDQUOT: "the disk quota is used up: free some space, then run the same command again",
    errno.EROFS: "the file system is read-only: choose another --out",
    errno.EACCES: "permission denied: choose another --out, or fix the permissions",
    errno.EPERM: "operation not permitted: choose another --out, or fix the permissions",
    errno.EISDIR: "that is a directory: give a file",
    errno.ENOTDIR: "a part of that path is a file, not a directory",
}


def describe(exc: OSError) -> str:
    """One line for an ``OSError``: the file, the system's reason, and what to do."""
    where = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc)
    line = f"{where}: {reason}" if where else reason
    remedy = _REMEDIES.get(exc.errno) if exc.errno is not None else None
    return f"{line}: {remedy}" if remedy else line
