"""Test configuration: the optimizer tests are deterministic and run on CPU."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# Make tests/optim_helpers.py importable however pytest is invoked.
sys.path.insert(0, str(Path(__file__).parent))

# tests/clients needs lightning, transformers & co. (the `clients` extra) and minutes of CPU;
# tests/ray needs ray (the `ray` extra) and starts Ray clusters. `make test` leaves them out;
# each runs when named (`pytest tests/clients`, `make test-clients`, `make test-ray`) or with
# NNOPT_CLIENT_TESTS=1 / NNOPT_RAY_TESTS=1.
HEAVY = {Path(__file__).parent / "clients": "NNOPT_CLIENT_TESTS",
         Path(__file__).parent / "ray": "NNOPT_RAY_TESTS"}  # fmt: skip


def _requested(directory: Path, config: pytest.Config) -> bool:
    if os.environ.get(HEAVY[directory]) == "1":
        return True
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::", 1)[0]).resolve()
        if path == directory or directory in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path in HEAVY and not _requested(collection_path, config):
        return True
    return None


@pytest.fixture(autouse=True)
def _deterministic(request: pytest.FixtureRequest):
    torch.manual_seed(0)
    threads = torch.get_num_threads()  # a training run sets its own; the next test gets it back
    if "soap" in request.node.name:
        # SOAP's tiny eigh/QR/matmuls on two MKL threads of a shared 2-core machine wait far
        # longer than they compute (a 5x5 QR: 560 us against 5 us on one thread).
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Without a GPU, the CUDA cases (tests/test_cuda.py, the torch suite's cuda configurations)
# would each print a "SKIPPED ... CUDA not available" line under -ra, ~50 of them: they are
# left out at collection instead, and counted in one line at the end.
_NO_CUDA: list[pytest.Item] = []


def _needs_cuda(item: pytest.Item) -> bool:
    for mark in item.iter_markers():
        reason = str(mark.kwargs.get("reason", ""))
        active = mark.name == "skip" or (mark.name == "skipif" and mark.args and mark.args[0])
        if active and "CUDA" in reason:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    _NO_CUDA[:] = [item for item in items if _needs_cuda(item)]
    if _NO_CUDA:
        config.hook.pytest_deselected(items=list(_NO_CUDA))
        dropped = set(map(id, _NO_CUDA))
        items[:] = [item for item in items if id(item) not in dropped]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _NO_CUDA:
        terminalreporter.write_line(f"CUDA not available: {len(_NO_CUDA)} CUDA tests not run")
