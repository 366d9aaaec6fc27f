"""Hands pytest's cache to configs.py, and prints the suite's counts at the end of a run:
properties x configurations, passed / failed / skipped, skips by reason, failures by kind.

Set ``NNOPT_SUITE_REPORT=path.json`` to also write them as JSON (``summary.py`` does).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict

import pytest
import torch

from tests.torch_suite import configs

SUITE = "tests/torch_suite/"
_outcomes: dict[str, tuple[str, str]] = {}  # nodeid -> (outcome, reason or failure kind)


def pytest_configure(config):
    configs.set_cache(getattr(config, "cache", None))


def _kind(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    line = text.strip().splitlines()[0] if text.strip() else "?"
    # Addresses and long numbers vary between runs; the kind should not.
    line = re.sub(r"0x[0-9a-f]+", "0x…", line)
    line = re.sub(r"(?<![\w.])\d+(\.\d+)?(e-?\d+)?(?![\w.])", "N", line)  # step 3, [2], 0.5
    return line[:200]


def pytest_runtest_logreport(report):
    if SUITE not in report.nodeid.replace("\\", "/"):
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        if report.outcome == "skipped":
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else "?"
            _outcomes[report.nodeid] = ("skipped", reason.removeprefix("Skipped: "))
        elif report.outcome == "failed":
            _outcomes[report.nodeid] = ("failed", _kind(report))
        else:
            _outcomes[report.nodeid] = ("passed", "")


def summary() -> dict:
    props: dict[str, Counter] = defaultdict(Counter)
    skipped, failed = Counter(), Counter()
    failed_props: dict[str, set] = defaultdict(set)
    for nodeid, (outcome, why) in _outcomes.items():
        test, _, param = nodeid.split("::")[-1].partition("[")
        props[test][outcome] += 1
        if outcome == "skipped":
            skipped[why] += 1
        elif outcome == "failed":
            failed[why] += 1
            failed_props[why].add(test)
    total = Counter()
    for counts in props.values():
        total.update(counts)
    return dict(
        properties=len(props),
        configurations=len(configs.all_configs()),
        impl_variants=len(configs.impl_configs()),
        unhonoured_variants=len(configs.unhonoured_configs()),
        error_inputs=len(configs.error_inputs()),
        tests=sum(total.values()),
        passed=total["passed"],
        failed=total["failed"],
        skipped=total["skipped"],
        per_property={k: dict(v) for k, v in sorted(props.items())},
        skipped_by_reason=dict(skipped.most_common()),
        failures={n: why for n, (o, why) in _outcomes.items() if o == "failed"},
        failed_by_kind={
            k: dict(count=n, properties=sorted(failed_props[k])) for k, n in failed.most_common()
        },
    )


def pytest_terminal_summary(terminalreporter):
    if not _outcomes:
        return
    s = summary()
    write = terminalreporter.write_line
    terminalreporter.section("torch_suite (TestOptimRenewed ported)")
    write(
        f"{s['properties']} properties x {s['configurations']} optim_db configurations "
        f"(+{s['impl_variants']} with foreach/forloop/fused, +{s['unhonoured_variants']} with "
        f"options nnopt refuses, {s['error_inputs']} error inputs) x 2 layouts x 4 kernel modes"
    )
    write(f"{s['tests']} tests: {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped")
    if s["skipped_by_reason"]:
        write("skipped, by reason:")
        for reason, n in s["skipped_by_reason"].items():
            write(f"  {n:6d}  {reason}")
    if s["failed_by_kind"]:
        write("failed, by kind (first line of the error):")
        for kind, info in list(s["failed_by_kind"].items())[:40]:
            write(
                f"  {info['count']:6d}  {kind}  [{', '.join(info['properties'][:4])}"
                f"{', ...' if len(info['properties']) > 4 else ''}]"
            )
        if len(s["failed_by_kind"]) > 40:
            write(f"  ... {len(s['failed_by_kind']) - 40} more kinds (see NNOPT_SUITE_REPORT)")
    path = os.environ.get("NNOPT_SUITE_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(s, f, indent=1)


@pytest.fixture(autouse=True)
def _one_thread():
    """The suite's tensors are tiny: intra-op threads only cost (and contend on 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _deterministic():
    """Overrides tests/conftest.py's: torch.manual_seed also seeds the lazy CUDA, XPU and
    MTIA generators, formatting a stack trace for each (~5 ms a test here). The suite draws
    from explicit generators; the default CPU one is seeded for anything else."""
    torch.default_generator.manual_seed(0)
    yield
