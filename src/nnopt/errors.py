"""The errors a person can fix: each is reported as its message, never as a traceback.

A leaf module (it imports nothing from nnopt), so every layer may raise these. The command line
prints a :class:`UserError` as ``nnopt COMMAND: error: MESSAGE`` and exits with status 2; any
other exception is a bug (in nnopt or in user code) and keeps its traceback.

The subclasses are also ``ValueError`` (and ``DataFileNotFound`` a ``FileNotFoundError``), so
code that caught those before still does.
"""

from __future__ import annotations

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
