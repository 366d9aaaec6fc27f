"""The README checker (tests/readme_commands.py) on small pages, and the README's commands."""

from __future__ import annotations

from pathlib import Path

import readme_commands as rc

PAGE = """
```bash
make demo   # the first
.venv/bin/nnopt lr-find r.toml
```

<!-- output of: make demo -->
| variant | final | wall time (s), machine-dependent |
|---|---|---|
| sgd | 91.90% | 12.4 |

```text
$ .venv/bin/nnopt lr-find r.toml
suggested lr 0.00248 (steepest descent); min/10 rule …; 100 steps
```

```text
$ .venv/bin/nnopt train bad.toml
nnopt train: error: bad.toml: optimizer.lr must be > 0, got -1
```
"""

PRINTED = """
┃ variant ┃ final ┃ wall time (s) ┃
│ sgd     │ 91.90% │ 30.7 │
"""


def test_commands_come_in_order_with_what_they_must_print():
    steps = rc.parse(PAGE)
    assert [s.command for s in steps] == [
        "make demo   # the first",
        ".venv/bin/nnopt lr-find r.toml",
        ".venv/bin/nnopt train bad.toml",
    ]
    assert steps[0].tables == [[["variant", "final", "wall time (s), machine-dependent"],
                                ["sgd", "91.90%", "12.4"]]]  # fmt: skip
    assert steps[1].lines[0].startswith("suggested lr 0.00248") and not steps[1].may_fail
    assert steps[2].may_fail  # shown as an error: only its output is checked


def test_tables_compare_cells_except_machine_dependent_ones():
    table = rc.parse(PAGE)[0].tables[0]
    assert rc.table_problems(table, PRINTED) == []  # 12.4 vs 30.7: a time, not compared
    assert rc.table_problems(table, PRINTED.replace("91.90%", "91.70%")) == [
        "sgd, final: README '91.90%', printed '91.70%'"
    ]
    assert "no printed row 'sgd'" in rc.table_problems(table, "nothing")[0]


def test_lines_match_with_ellipsis_for_any_text():
    expected = rc.parse(PAGE)[1].lines
    out = "suggested lr 0.00248 (steepest descent); min/10 rule 0.00148; 100 steps\n"
    assert rc.line_problems(expected, out) == []
    assert rc.line_problems(expected, out.replace("0.00248", "0.0025")) != []


def test_the_readme_calls_nnopt_by_its_path_and_starts_with_make_demo():
    steps = rc.parse((Path(__file__).parents[1] / "README.md").read_text())
    assert steps[0].command.startswith("make demo")
    for step in steps:
        first = step.command.split()[0]
        assert first in ("make", ".venv/bin/nnopt", ".venv/bin/python", ".venv/bin/torchrun"), (
            step.command
        )
    assert any(step.tables for step in steps)  # the demo's numbers are checked
