"""Every file nnopt writes goes through here: a reader sees the old file or the new one, never half.

Each writer fills a temporary file in the target's own directory (so the rename never crosses
file systems), flushes it to disk, gives it the mode a plain ``open()`` would (``0o666`` less the
umask) and renames it over the target with ``os.replace``. A crash or a kill while writing leaves
the previous file untouched and at most a stray hidden ``.NAME.XXXX.tmp`` next to it
(``stray_temporaries`` finds them, for whoever owns the directory to remove). Missing parent
directories are created. A write that fails raises ``OSError`` naming the target (torch's
``RuntimeError`` for a full disk becomes ``ENOSPC``).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "save_figure",
    "save_torch",
    "stray_temporaries",
    "write_bytes",
    "write_text",
    "write_with",
]


def write_with(path: str | os.PathLike[str], write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp)`` with a temporary path next to ``path``, then make it ``path``.

    ``write`` must create or fill the file at ``tmp``; anything it raises propagates, and the
    temporary file is removed.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        try:
            write(tmp)
        except RuntimeError as exc:  # torch.save reports a failed write so ([enforce fail...])
            raise _write_failure(target, exc) from exc
        # mkstemp creates the file 0600; a plain open() would give 0666 less the umask.
        os.chmod(tmp, 0o666 & ~umask())
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())  # on disk before the rename makes it the file of record
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)
    return target


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return write_with(path, lambda tmp: Path(tmp).write_bytes(data))


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """``text`` as UTF-8, newlines as given (no platform translation)."""
    return write_bytes(path, text.encode("utf-8"))


def save_torch(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save(obj)`` to ``path``."""
    import torch

    return write_with(path, lambda tmp: torch.save(obj, tmp))


def save_figure(path: str | os.PathLike[str], figure: Any, **kwargs: Any) -> Path:
    """A matplotlib figure, in the format that ``path``'s suffix names (``.png``, ``.svg``...)."""
    fmt = Path(path).suffix.lstrip(".") or None
    return write_with(path, lambda tmp: figure.savefig(tmp, format=fmt, **kwargs))


def _write_failure(target: Path, exc: RuntimeError) -> OSError:
    """The OSError a failed write should have been: ENOSPC when the disk is (nearly) full."""
    try:
        full = shutil.disk_usage(target.parent).free < 1 << 20
    except OSError:
        full = False
    if full:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return OSError(errno.EIO, f"writing failed ({first_line})", str(target))


def umask() -> int:
    """The process's file-creation mask."""
    try:  # Linux reports it without changing it (setting it is not thread-safe)
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; best effort (not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def stray_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """The temporary files that killed writes left in ``directory`` (``.NAME.XXXX.tmp``)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob(".*.tmp") if p.is_file())
