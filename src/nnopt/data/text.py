"""A character-level language-model data set over a text file, or over Python's own sources.

Every machine with Python has text to learn from: the standard library's ``.py`` files, read
from the running interpreter's install (sorted by path, concatenated up to ``max_chars``), so
no download is needed. Its exact content depends on the Python version: numbers measured on
it are labelled as such. Any UTF-8 file can be named instead (``options.path``).

The text is cut once, not shuffled: the first ``1 - val_fraction`` of it trains, the rest is
held out (a shuffled cut would put overlapping context on both sides). Each part becomes
non-overlapping windows of ``context + 1`` characters: ``x`` the first ``context``, ``y`` the
same shifted by one, so the model predicts every next character (next-token cross-entropy).
"""

from __future__ import annotations

import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING

from nnopt.data.dataset import Dataset
from nnopt.errors import DataError

if TYPE_CHECKING:
    import torch

NAME = "charlm"
DESCRIPTION = "next character of a text file (default: Python's stdlib sources)"
SIZE = "300k chars (options path, context=64, max_chars)"


def stdlib_corpus(max_chars: int) -> str:
    """The standard library's top-level ``.py`` files, in path order, up to ``max_chars``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for path in sorted(root.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        parts.append(text)
        size += len(text)
        if size >= max_chars:
            break
    if not parts:
        raise DataError(f"{NAME}: no Python sources found under {root}; give options.path")
    return "".join(parts)[:max_chars]


def char_lm_dataset(
    *,
    val_fraction: float = 0.1,
    path: str | None = None,
    context: int = 64,
    max_chars: int = 300_000,
) -> Dataset:
    """Windows of ``context`` characters and their next characters, as int64 token ids."""
    import torch  # here, not at import: `nnopt datasets` lists this set without torch

    if context < 2:
        raise DataError(f"{NAME}: options.context must be >= 2, got {context}")
    if path is None:
        text = stdlib_corpus(max_chars)
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")[:max_chars]
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(
                f"{NAME}: cannot read options.path {path} as UTF-8 text ({exc})"
            ) from exc
    vocabulary = sorted(set(text))
    index = {ch: i for i, ch in enumerate(vocabulary)}
    tokens = torch.tensor([index[ch] for ch in text], dtype=torch.int64)
    cut = int(len(tokens) * (1 - val_fraction))
    train, held = _windows(tokens[:cut], context), _windows(tokens[cut:], context)
    if len(train) < 1 or len(held) < 1:
        raise DataError(
            f"{NAME}: {len(text)} characters are too few for windows of {context + 1} on both "
            f"sides of the split; give a longer text or a smaller options.context"
        )
    return Dataset(
        name=NAME,
        x_train=train[:, :-1].contiguous(),
        y_train=train[:, 1:].contiguous(),
        x_test=held[:, :-1].contiguous(),
        y_test=held[:, 1:].contiguous(),
        task="language_model",
        num_classes=len(vocabulary),
        classes=vocabulary,
        test_is_validation=True,
    )


def _windows(tokens: torch.Tensor, context: int) -> torch.Tensor:
    import torch

    count = (len(tokens) - 1) // context
    if count < 1:
        return tokens.new_zeros((0, context + 1))
    # Window i covers tokens[i*context : i*context + context + 1] (its last is the next's first).
    starts = torch.arange(count) * context
    return tokens[starts[:, None] + torch.arange(context + 1)]
