"""The command line starts without torch: `nnopt --help` and `nnopt datasets` import none of it
(benchmarks/startup.py measures the time; this checks the cause, which cannot be noisy)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
{setup}
heavy = sorted(m for m in ("torch", "sklearn", "matplotlib", "pydantic") if m in sys.modules)
print(",".join(heavy) or "none")
"""


@pytest.mark.parametrize(
    "setup",
    [
        "import nnopt",
        "from nnopt.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
        "from nnopt.cli import main\nmain(['datasets'])",
    ],
    ids=["import nnopt", "nnopt --help", "nnopt datasets"],
)
def test_the_light_commands_import_no_heavy_module(setup):
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "none"


def test_the_optimizers_still_load_on_first_use():
    done = subprocess.run(
        [sys.executable, "-c", "import nnopt, torch; print(nnopt.Adam is torch.optim.Adam, "
         "issubclass(nnopt.Adam, torch.optim.Optimizer), 'AdamW' in nnopt.__all__)"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.stdout.split() == ["False", "True", "True"], done.stderr
