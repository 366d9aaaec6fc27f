"""Run every shell command of README.md, in order, in a fresh clone, and check its numbers.

    python tests/readme_commands.py [--repo .] [--clone /tmp/readme-clone] [--keep]
    make readme-check

What the README promises, and what this checks:

- every line of every ```bash block is a command that works as written, in order, from the
  clone's root (exit status 0);
- a ```text block whose first line is ``$ COMMAND`` shows COMMAND's output: COMMAND is run (if
  no bash block ran it already) and every further line of the block must appear in its output,
  spaces normalised; ``…`` in an expected line stands for any text (machine-dependent parts);
- a Markdown table right after ``<!-- output of: COMMAND -->`` is the table COMMAND printed:
  every row must match the printed row of the same first cell, cell by cell, except in columns
  whose header says ``machine-dependent``.

The commands are those a new user types, so this takes as long as they do (about a quarter
of an hour on 2 cores: set-up, the test suite, the demo, the comparisons, two torchruns).
It is not part of ``make test``; CI runs it as ``make readme-check``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\s*$")
OUTPUT_OF = re.compile(r"^<!-- output of: (.+?) -->\s*$")
MACHINE = "machine-dependent"


@dataclass
class Step:
    """One command, and what its output must show."""

    command: str
    may_fail: bool = False  # a text block showing an error message
    lines: list[str] = field(default_factory=list)  # expected output lines (… = anything)
    tables: list[list[list[str]]] = field(default_factory=list)  # header row, then rows


def _table(lines: list[str]) -> list[list[str]]:
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines]
    return [row for row in rows if not all(set(c) <= set("-: ") for c in row)]


def parse(readme: str) -> list[Step]:
    """The README's commands in order, each with the outputs the README shows for it."""
    steps: list[Step] = []
    by_command: dict[str, Step] = {}
    lines = readme.splitlines()
    i = 0
    while i < len(lines):
        fence, output_of = FENCE.match(lines[i]), OUTPUT_OF.match(lines[i])
        if fence and fence.group(1) in ("bash", "text"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            body = lines[i + 1 : end]
            if fence.group(1) == "bash":
                for line in body:
                    if line.strip() and not line.lstrip().startswith("#"):
                        step = Step(line.strip())
                        steps.append(step)
                        by_command[_bare(line)] = step
            elif body and body[0].startswith("$ "):
                command = body[0][2:].strip()
                step = by_command.get(_bare(command))
                if step is None:
                    step = by_command[_bare(command)] = Step(command, may_fail=True)
                    steps.append(step)
                step.lines += [ln for ln in body[1:] if ln.strip()]
            i = end + 1
        elif output_of:
            j = i + 1
            while j < len(lines) and not lines[j].startswith("|"):
                j += 1
            k = j
            while k < len(lines) and lines[k].startswith("|"):
                k += 1
            by_command[_bare(output_of.group(1))].tables.append(_table(lines[j:k]))
            i = k
        else:
            i += 1
    return steps


def _bare(command: str) -> str:
    """A command without its trailing comment and extra spaces (how blocks refer to it)."""
    return " ".join(command.split(" #", 1)[0].split())


def _normal(text: str) -> str:
    return " ".join(text.split())


def line_problems(expected: list[str], output: str) -> list[str]:
    """Expected lines (with … for any text) missing from the output."""
    text = _normal(output)
    missing = []
    for line in expected:
        pattern = ".*?".join(re.escape(part) for part in _normal(line).split("…"))
        if not re.search(pattern, text):
            missing.append(f"expected a line like: {line}")
    return missing


def printed_rows(output: str) -> dict[str, list[str]]:
    """Rows of the rich tables in ``output``, by first cell."""
    rows = {}
    for line in output.splitlines():
        if "│" in line or "┃" in line:
            cells = [c.strip() for c in re.split("[│┃]", line)[1:-1]]
            if cells and cells[0]:
                rows[cells[0]] = cells
    return rows


def table_problems(table: list[list[str]], output: str) -> list[str]:
    """Cells of the README's table that differ from the printed table (machine-dependent
    columns left out)."""
    header, *rows = table
    printed = printed_rows(output)
    problems = []
    for row in rows:
        got = printed.get(row[0])
        if got is None:
            problems.append(f"no printed row {row[0]!r} (printed: {', '.join(printed)})")
            continue
        for name, want, have in zip(header, row, got, strict=False):
            if MACHINE not in name and want != have:
                problems.append(f"{row[0]}, {name}: README {want!r}, printed {have!r}")
    return problems


def run(step: Step, cwd: Path) -> tuple[int, str, float]:
    start = time.perf_counter()
    done = subprocess.run(
        ["bash", "-c", step.command],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode, done.stdout, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description="Run README.md's commands in a fresh clone.")
    parser.add_argument("--repo", default=".", help="the repository to clone (default: .)")
    parser.add_argument("--clone", default="/tmp/nnopt-readme-clone", help="where to clone it")
    parser.add_argument("--keep", action="store_true", help="keep the clone afterwards")
    parser.add_argument("--log", help="also write every command's output to this file")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="COMMAND",
        help="leave out commands starting with this (CI: `make test`, which it has just run)",
    )
    args = parser.parse_args()
    clone = Path(args.clone)
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", args.repo, str(clone)], check=True)
    steps = parse((clone / "README.md").read_text())
    log = open(args.log, "w") if args.log else None  # noqa: SIM115 (closed below)
    failures = 0
    for n, step in enumerate(steps, 1):
        if any(step.command.startswith(prefix) for prefix in args.skip):
            print(f"[{n}/{len(steps)}] skipped: {step.command}", flush=True)
            continue
        status, output, seconds = run(step, clone)
        problems = [] if status == 0 or step.may_fail else [f"exit status {status}"]
        problems += line_problems(step.lines, output)
        for table in step.tables:
            problems += table_problems(table, output)
        mark = "ok" if not problems else "FAILED"
        print(f"[{n}/{len(steps)}] {mark} ({seconds:.0f} s): {step.command}", flush=True)
        for problem in problems:
            print(f"    {problem}")
        if problems:
            failures += 1
            print("    output (last lines):\n      " + "\n      ".join(output.splitlines()[-15:]))
        if log:
            log.write(f"$ {step.command}\n{output}\n")
    if log:
        log.close()
    if not args.keep:
        shutil.rmtree(clone, ignore_errors=True)
    print(f"{len(steps) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
