"""The one directory nnopt caches generated files in: built kernels, generated data sets.

Everything in it can be made again; deleting it only costs the time to rebuild.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$NNOPT_CACHE_DIR``, else ``$XDG_CACHE_HOME/nnopt``, else ``~/.cache/nnopt``.

    As the XDG base-directory spec says, a relative ``XDG_CACHE_HOME`` is ignored.
    """
    explicit = os.environ.get("NNOPT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "nnopt"
