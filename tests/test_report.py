"""A comparison's report.html and report.md: figures a person can read, and a Recipes section
that shows what differs between the variants first, without fields that do nothing
(issue 20, item 10)."""

from __future__ import annotations

import re

import pytest
from recipe_helpers import make

from nnopt.experiments.report import write_reports
from nnopt.models import build_model
from nnopt.recipe.schedule import ScheduleSpec
from nnopt.recipe.schema import ModelSpec


def variants() -> dict[str, str]:
    base = {"model": {"kind": "cnn1d"}, "schedule": {"kind": "cosine"}, "train": {"steps": 10}}
    return {
        name: make(**base, optimizer={"name": name, "lr": lr}).to_toml()
        for name, lr in (("sgd", 0.1), ("adam", 0.01))
    }


def test_the_recipes_section_shows_what_differs_and_drops_what_does_nothing(tmp_path):
    md, html = write_reports(tmp_path, "t", [], None, [], variants(), 1)
    section = md.read_text().partition("## Recipes")[2]
    differs, _, common = section.partition("The same in every variant")
    assert "| field | sgd | adam |" in differs
    assert '| `optimizer.name` | `"sgd"` | `"adam"` |' in differs
    assert "| `optimizer.lr` | `0.1` | `0.01` |" in differs
    # A cnn1d reads channels, activation and dropout; a cosine final_lr, decay and warmup.
    assert "channels = 25" in common and "final_lr = 0.0" in common
    for unused in ("hidden", "heads", "width", "layers", "pct_start"):
        assert not re.search(rf"^{unused} =", section, re.M), unused
    assert section.count("[model]") == 1  # the shared part once, not once a variant
    assert len(section.splitlines()) < 60  # (two resolved recipes in full: 110 lines)
    page = html.read_text()
    assert "What differs between the variants" in page and "pct_start" not in page


def test_the_figures_are_full_width_and_enlarge_on_a_click(tmp_path):
    from nnopt.experiments.plots import Plot

    png = tmp_path / "plot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    _, html = write_reports(tmp_path, "t", [], None, [Plot(png, "A caption.")], variants(), 1)
    page = html.read_text()
    assert "520px" not in page and "inline-block" not in page  # not two small ones a row
    assert "width: 100%" in page and "zoomed" in page and "addEventListener" in page


MODEL_VALUES = {"hidden": [7], "activation": "tanh", "dropout": 0.3, "channels": 6,
                "width": 12, "layers": 3, "heads": 8}  # fmt: skip


@pytest.mark.parametrize("kind", list(ModelSpec.USES))
def test_a_models_unused_fields_change_nothing(kind):
    # The table the report trusts (ModelSpec.USES) against the builder itself.
    def built(**changed):
        spec = ModelSpec(kind=kind, **changed)
        fields = {k: getattr(spec, k) for k in MODEL_VALUES}
        fields["hidden"] = tuple(fields["hidden"])
        return repr(build_model(kind, 24, 6, input_shape=(24,), **fields))

    spec = ModelSpec(kind=kind)
    for name in spec.unused_fields():
        assert built(**{name: MODEL_VALUES[name]}) == built(), (kind, name)


SCHEDULE_VALUES = {"step_size": 7, "gamma": 0.5, "decay_steps": 50, "warmup_steps": 5,
                   "final_lr": 0.01, "pct_start": 0.5}  # fmt: skip
NEEDS = {"step": {"step_size": 10}, "exponential": {"gamma": 0.9},
         "warmup_cosine": {"warmup_steps": 3}}  # fmt: skip


@pytest.mark.parametrize("kind", list(ScheduleSpec.USES))
def test_a_schedules_unused_fields_change_nothing(kind):
    def curve(**changed):
        schedule = {"kind": kind, **NEEDS.get(kind, {}), **changed}
        lr = make(schedule=schedule, train={"steps": 100}).lr_schedule(100)
        return [lr(step) if callable(lr) else lr for step in range(100)]

    for name in ScheduleSpec(kind=kind, **NEEDS.get(kind, {})).unused_fields():
        assert curve(**{name: SCHEDULE_VALUES[name]}) == curve(), (kind, name)
