"""Test configuration: the optimizer tests are deterministic and run on CPU."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# Make tests/optim_helpers.py importable however pytest is invoked.
sys.path.insert(0, str(Path(__file__).parent))

# tests/clients needs lightning, transformers & co. (the `clients` extra) and minutes of CPU:
# `make test` leaves it out; it runs when named (`pytest tests/clients`, `make test-clients`)
# or with NNOPT_CLIENT_TESTS=1.
CLIENTS = Path(__file__).parent / "clients"


def _clients_requested(config: pytest.Config) -> bool:
    if os.environ.get("NNOPT_CLIENT_TESTS") == "1":
        return True
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::", 1)[0]).resolve()
        if path == CLIENTS or CLIENTS in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path == CLIENTS and not _clients_requested(config):
        return True
    return None


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    threads = torch.get_num_threads()  # a training run sets its own; the next test gets it back
    yield
    torch.set_num_threads(threads)
