"""Run the ported suite and print its counts: per property, passed / failed / skipped, skips
by reason and failures by kind (the first line of each error).

    .venv/bin/python tests/torch_suite/summary.py            # nnopt as it is
    .venv/bin/python tests/torch_suite/summary.py --torch    # the suite against torch.optim
    .venv/bin/python tests/torch_suite/summary.py -k Adagrad --json out.json

``--torch`` runs the suite against torch.optim's own classes dressed in nnopt's surface
(``flat``, ``kernels``, the refusals): everything must pass there, which checks the suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", help="pytest -k expression")
    parser.add_argument("--torch", action="store_true", help="run against torch.optim itself")
    parser.add_argument("--json", help="also write the counts here")
    parser.add_argument("--kinds", type=int, default=60, help="failure kinds to list")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        env = dict(os.environ, NNOPT_SUITE_REPORT=str(report))
        if args.torch:
            env["NNOPT_SUITE_TARGET"] = "torch"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "tests/torch_suite",
            "-q",
            "-p",
            "no:randomly",
            "--tb=line",
        ]
        cmd += ["-k", args.k] if args.k else []
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if not report.exists():
            print(done.stdout[-4000:], done.stderr[-4000:], sep="\n")
            return 2
        s = json.loads(report.read_text())
    if args.json:
        Path(args.json).write_text(json.dumps(s, indent=1))

    print(
        f"{s['properties']} properties x {s['configurations']} optim_db configurations "
        f"(+{s['impl_variants']} foreach/forloop/fused variants, +{s['unhonoured_variants']} "
        f"refused variants, {s['error_inputs']} error inputs)"
    )
    print(f"{s['tests']} tests: {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped")
    print(f"\n{'property':44s} {'passed':>7s} {'failed':>7s} {'skipped':>8s}")
    for name, counts in s["per_property"].items():
        print(
            f"{name:44s} {counts.get('passed', 0):7d} {counts.get('failed', 0):7d} "
            f"{counts.get('skipped', 0):8d}"
        )
    if s["skipped_by_reason"]:
        print("\nskipped, by reason:")
        for reason, n in s["skipped_by_reason"].items():
            print(f"  {n:6d}  {reason}")
    if s["failed_by_kind"]:
        print("\nfailed, by kind:")
        for kind, info in list(s["failed_by_kind"].items())[: args.kinds]:
            print(f"  {info['count']:6d}  {kind}")
            print(f"          in {', '.join(info['properties'])}")
    return 0 if s["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
