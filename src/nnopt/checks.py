"""The one error for a value out of its range, shared by every layer (it imports nothing).

``name must be <allowed>, got <value>``: the optimizers' options (``optim/validation.py`` adds
torch.optim's own words) and the schedules' arguments raise it, and the recipe loader names
the recipe's field from ``option`` without reading the message.
"""

from __future__ import annotations

from typing import Any


class OptionError(ValueError):
    """A bad option. ``option`` names it (``"betas[0]"``), ``plain`` is nnopt's sentence alone
    (what a recipe error shows, prefixed with the recipe's field); the message adds torch.optim's
    words for the same mistake where torch has them."""

    def __init__(self, plain: str, torch_words: str | None = None, *, option: str = "") -> None:
        self.plain = plain
        self.option = option
        super().__init__(plain if torch_words is None else f"{plain} (torch.optim: {torch_words})")


def require(ok: bool, name: str, allowed: str, value: Any) -> None:
    """Raise ``OptionError("<name> must be <allowed>, got <value>")`` unless ``ok``."""
    if not ok:
        raise OptionError(f"{name} must be {allowed}, got {value!r}", option=name)
