"""A run directory has one writer at a time: an advisory lock the OS releases with the process.

``flock`` on the directory itself (no lock file to go stale): a second ``nnopt train`` or a
compare worker pointed at a directory in use fails at once with one line, and a process killed
with ``kill -9`` holds nothing afterwards. The holder also removes what killed writes of earlier
processes left behind (``atomic.stray_temporaries``): no one else can be writing there.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from nnopt import atomic
from nnopt.errors import UserError

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked there
    fcntl = None  # type: ignore[assignment]


class RunInUse(UserError):
    """Another live process holds the run directory."""


class RunLock:
    """Hold ``run_dir`` for this process (``with RunLock(run_dir): ...``)."""

    def __init__(self, run_dir: str | os.PathLike[str]):
        self.run_dir = Path(run_dir)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            return self
        fd = os.open(self.run_dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunInUse(
                f"{self.run_dir} is in use by another nnopt process: wait for it to end, or "
                "choose another --out"
            ) from None
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        for stray in atomic.stray_temporaries(self.run_dir):
            stray.unlink(missing_ok=True)
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
