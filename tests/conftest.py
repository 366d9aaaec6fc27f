"""Test configuration: the optimizer tests are deterministic and run on CPU."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

# Make tests/optim_helpers.py importable however pytest is invoked.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
