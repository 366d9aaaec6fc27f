"""Build, cache and load the native CPU kernels (``cpu_kernels.cpp``) with ctypes.

The library is plain C++ with a C ABI and no PyTorch headers, so it compiles in seconds
(a ``torch.utils.cpp_extension`` build of the same code takes about 45 s here, mostly
PyTorch's headers) and needs no ``ninja``. It is built once per machine, on first use, into
``$NNOPT_CACHE_DIR`` (default ``$XDG_CACHE_HOME/nnopt`` or ``~/.cache/nnopt``) under a name
that hashes the sources (``SOURCES``), the flags and the compiler's version, so an edit or
another compiler builds a fresh copy. Builds write a temporary file and rename it into place,
so concurrent processes never load a half-written library.

A build prints one line to stderr before it starts and one when it ends (it takes seconds on a
quiet machine, minutes on a loaded one: a silent pause would look like a hang). ``make setup``
builds the library ahead (``python -m nnopt.optim.kernels``), and the trainer loads it
before its clock starts, so a build never counts in a run's wall time.

Anything that goes wrong (no compiler, a cache directory that cannot be created, a failed
build, a library that will not load) gives one warning and ``None``: the optimizers then run
their eager rules, which are the reference the kernels are tested against.
``NNOPT_KERNELS=eager`` in the environment skips the build.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from nnopt.cache import cache_dir

SOURCE = Path(__file__).with_name("cpu_kernels.cpp")
# Everything the build reads: the cache key hashes them all, so a library built from other
# sources is never loaded (its blocks are read from it and checked as well, blocks.read).
SOURCES = sorted(SOURCE.parent.glob("cpu_*.[ch]*"))
# -march=native: with SSE2 only, Adam's sqrt and two divisions per element make the step
# compute-bound (37 ms against torch fused's 24 ms on 20M floats here; 20 ms with AVX2). The
# cache key holds the CPU's identity, so a cache shared by several machines stays valid.
# -ffp-contract=off keeps a*b+c
# two roundings, as in the eager ops; -fno-math-errno and -fno-trapping-math let sqrt and
# selects (lerp, the L1 threshold) vectorize; no -ffast-math, so NaN and inf behave as in torch.
BASE_FLAGS = [
    "-O3",
    "-std=c++17",
    "-fPIC",
    "-shared",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-ffp-contract=off",
    "-pthread",
]
NATIVE_FLAGS = ["-march=native"]
# GCC unswitches a loop on a loop-invariant condition (a kernel's lerp form, chosen from a
# beta) only below a size: AdEMAMix's two lerps were past it and its loop stayed scalar, 7.7
# ms against 1.06 ms with this on 2.5M floats (clang takes no --param: the next set).
UNSWITCH_FLAGS = ["--param", "max-unswitch-insns=400"]
# Tried in order: a compiler without these options still gets a working library.
FLAG_SETS = [BASE_FLAGS + NATIVE_FLAGS + UNSWITCH_FLAGS, BASE_FLAGS + NATIVE_FLAGS, BASE_FLAGS]

_lock = threading.Lock()
_loaded: dict[str, ctypes.CDLL | None] = {}
_failure: list[str] = []


def find_compiler() -> str | None:
    """The C++ compiler: ``$CXX`` or the first of c++, g++, clang++ on the PATH."""
    candidates = [os.environ.get("CXX"), "c++", "g++", "clang++"]
    for name in candidates:
        if name and (path := shutil.which(name)):
            return path
    return None


def _compiler_id(compiler: str) -> str:
    try:
        out = subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
        return out.stdout.splitlines()[0] if out.stdout else compiler
    except (OSError, subprocess.SubprocessError):
        return compiler


def _cpu_id() -> str:
    """The CPU's model and feature flags (``-march=native`` code is only valid on such CPUs)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags", "Features"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor()


def library_path(compiler: str, flags: list[str]) -> Path:
    """The cache path of the library built by ``compiler`` with ``flags``."""
    digest = hashlib.sha256()
    sources = [path.read_bytes() for path in SOURCES]
    for part in (*sources, " ".join(flags).encode(), _compiler_id(compiler).encode()):
        digest.update(part)
        digest.update(b"\0")
    digest.update(platform.machine().encode())
    digest.update(_cpu_id().encode())
    return cache_dir() / f"nnopt_cpu_kernels_{digest.hexdigest()[:16]}.so"


def _compile(compiler: str, flags: list[str], target: Path) -> str | None:
    """Compile into ``target`` atomically; return the error text on failure.

    The source builds as two translation units in parallel (``NNOPT_PART`` 1: the rules'
    plain entries; 2: their compact entries, ``cpu_compact.h``), linked into one library: on
    two cores that halves the wait (11 s against 25 here). If that fails, one unit with both.
    """
    try:
        # Inside the try: an unwritable cache is a failed build, not a crash.
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        return f"cannot write the kernel cache {target.parent}: {exc.strerror or exc}"
    try:
        error = _compile_in_parts(compiler, flags, tmp)
        if error is not None:
            error = _run([compiler, *flags, str(SOURCE), "-o", tmp])
        if error is None:
            os.replace(tmp, target)
        return error
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _compile_in_parts(compiler: str, flags: list[str], library: str) -> str | None:
    """The two translation units compiled side by side, then linked into ``library``."""
    with tempfile.TemporaryDirectory(dir=Path(library).parent) as work:
        objects = [str(Path(work) / f"part{part}.o") for part in (1, 2)]
        procs = [
            subprocess.Popen(
                [compiler, *flags, "-c", f"-DNNOPT_PART={part}", str(SOURCE), "-o", obj],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for part, obj in zip((1, 2), objects, strict=True)
        ]
        errors = []
        for proc in procs:
            try:
                _, err = proc.communicate(timeout=600)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
                errors.append("timed out after 600 s")
                continue
            if proc.returncode != 0:
                errors.append(err.strip()[-2000:] or f"exit status {proc.returncode}")
        if errors:
            return "\n".join(errors)
        return _run([compiler, *flags, *objects, "-o", library])


def _run(command: list[str]) -> str | None:
    """Run a compiler command; the error text if it fails."""
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        return proc.stderr.strip()[-2000:] or f"exit status {proc.returncode}"
    return None


def _announced_compile(compiler: str, flags: list[str], target: Path) -> str | None:
    """:func:`_compile`, with a line on stderr before and after (a build is not silent)."""
    print(
        f"nnopt: building the native CPU kernels (once per machine) into {target.parent} ...",
        file=sys.stderr,
        flush=True,
    )
    start = time.perf_counter()
    error = _compile(compiler, flags, target)
    outcome = "failed" if error else "done"
    print(f"nnopt: kernel build {outcome} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return error


def _build_and_load() -> ctypes.CDLL | None:
    if os.environ.get("NNOPT_KERNELS", "").lower() == "eager":
        _failure.append("NNOPT_KERNELS=eager")
        return None
    compiler = find_compiler()
    if compiler is None:
        return fail("no C++ compiler found (set CXX, or install g++ or clang++)")
    cache = cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return fail(
            f"cannot create the kernel cache {cache}: {exc.strerror or exc}; "
            "point NNOPT_CACHE_DIR at a writable directory"
        )
    errors = []
    for flags in FLAG_SETS:
        path = library_path(compiler, flags)
        if not path.exists():
            error = _announced_compile(compiler, flags, path)
            if error is not None:
                errors.append(error)
                continue
        try:
            return ctypes.CDLL(str(path))
        except OSError as exc:
            errors.append(str(exc))
    return fail("building the native kernels failed:\n" + "\n".join(errors))


def fail(reason: str) -> None:
    """Record why the kernels are unavailable and warn once; return ``None``."""
    _failure.append(reason)
    warnings.warn(
        f"nnopt: native CPU kernels unavailable, using the eager update rules ({reason})",
        RuntimeWarning,
        stacklevel=4,
    )
    return None


def load() -> ctypes.CDLL | None:
    """The kernel library, built on first call; ``None`` (after one warning) if unavailable."""
    if "lib" not in _loaded:
        with _lock:
            if "lib" not in _loaded:
                _loaded["lib"] = _build_and_load()
    return _loaded["lib"]


def failure_reason() -> str | None:
    """Why the library is unavailable, or ``None`` if it loaded (or was not tried yet)."""
    return _failure[-1] if _failure else None
