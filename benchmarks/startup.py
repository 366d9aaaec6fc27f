"""Start-up time of the command line against `python -c "import torch"`, side by side.

Each round runs the three commands one after another (so they share the machine's noise), as
fresh processes; the median over rounds is reported, and the ratio of each command's median
to torch's. Target (issue 13): `nnopt --help` and `nnopt datasets` at most half of torch's
import. Run:
    python benchmarks/startup.py [--rounds 7]
Exit status 1 if a ratio is over the target.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET = 0.5


def nnopt_command() -> list[str]:
    """The installed `nnopt` script beside this Python, as a user runs it."""
    script = Path(sys.executable).with_name("nnopt")
    return [str(script)] if script.exists() else [sys.executable, "-m", "nnopt"]


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds of the three commands")
    args = parser.parse_args()
    commands = {
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
        "nnopt --help": [*nnopt_command(), "--help"],
        "nnopt datasets": [*nnopt_command(), "datasets"],
    }
    for command in commands.values():  # warm the file cache: the first run reads from disk
        seconds(command)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, command in commands.items():
            times[name].append(seconds(command))
    base = statistics.median(times['python -c "import torch"'])
    ok = True
    print(f"median of {args.rounds} rounds, side by side ({sys.executable}):")
    for name, values in times.items():
        median = statistics.median(values)
        ratio = median / base
        mark = "" if name.startswith("python") else ("  ok" if ratio <= TARGET else "  OVER")
        ok = ok and (ratio <= TARGET or name.startswith("python"))
        spread = f"[{min(values):.3f}, {max(values):.3f}]"
        print(f"  {name:28s} {median:6.3f} s {spread}  {ratio:5.2f}x torch{mark}")
    print(f"target: each nnopt command <= {TARGET:.2f}x torch's import")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
