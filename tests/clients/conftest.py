"""Client integration tests: each case runs one training with torch.optim and one with nnopt.

Collected only when asked for (``make test-clients``, ``pytest tests/clients``); see
``tests/conftest.py``. The measured differences are printed as a table at the end.
"""

from __future__ import annotations

import logging
import os

import pytest

from tests.clients.helpers import Recorder

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may download
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
logging.getLogger("lightning").setLevel(logging.WARNING)
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)


@pytest.fixture
def record(request) -> Recorder:
    return Recorder(request.node.nodeid.split("::", 1)[-1])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not Recorder.rows:
        return
    terminalreporter.section("nnopt vs torch.optim: max relative difference")
    width = max(len(case) for case, _, _ in Recorder.rows)
    for case, what, value in Recorder.rows:
        terminalreporter.write_line(f"{case:<{width}}  {what:<34}  {value}")
