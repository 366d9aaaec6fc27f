"""The comparison's and lr-find's plots: axis ranges from the data, merged equal curves,
the winner's margin, the cut after an lr sweep's blow-up."""

from __future__ import annotations

import math

import matplotlib.image as mpimg
import numpy as np
import pytest

from nnopt.experiments.figures import comparison_plots
from nnopt.experiments.final_plot import margin_text
from nnopt.experiments.lr_find import LRFindResult, shown_points
from nnopt.experiments.plots import _distinct_curves, zoom
from nnopt.experiments.stats import RunRecord


def record(variant: str, seed: int, accs: list[float], lr: float) -> RunRecord:
    history = [
        {"step": 10 * (i + 1), "time": i + 1.0, "lr": lr, "train_loss": 1 / (i + 1),
         "val_accuracy": a}
        for i, a in enumerate(accs)
    ]  # fmt: skip
    return RunRecord(variant, seed, {"status": "finished"}, history)


def test_zoom_spans_the_final_values_not_the_start():
    low, high = zoom([0.906, 0.936, 0.92], [0.94], higher=True)
    assert low == pytest.approx(0.906 - 0.03) and high == pytest.approx(0.94 + 0.03 / 4)
    assert low > 0.8  # the start at 10% is left below the axis
    assert zoom([0.5, 0.5], [], higher=True) == pytest.approx((0.495, 0.50125))  # equal finals
    assert zoom([0.999, 1.0], [1.0], higher=True)[1] == 1.0  # an accuracy axis stops at 100%
    low, high = zoom([0.2, 0.3], [0.1], higher=False)  # a loss: the best is the lowest
    assert (low, high) == pytest.approx((0.1 - 0.025, 0.4))
    assert zoom([], [], higher=True) is None


def test_equal_lr_schedules_share_one_line():
    by_variant = {
        "rmsprop": [record("rmsprop", 0, [0.5, 0.6], 1e-2)],
        "adam": [record("adam", 0, [0.5, 0.7], 1e-2)],
        "sgd": [record("sgd", 0, [0.5, 0.6], 0.4)],
    }
    assert [names for names, _, _ in _distinct_curves(by_variant, "lr")] == [
        ["rmsprop", "adam"],
        ["sgd"],
    ]


def test_the_margin_names_the_winner_and_its_lead():
    ranked = [("rmsprop", 0.936), ("sgd", 0.919), ("adam", 0.906)]
    assert margin_text(ranked, "val_accuracy") == (
        "rmsprop best: 93.60%, +1.70 points over sgd (medians)"
    )
    assert margin_text([("a", 0.2), ("b", 0.25)], "val_loss") == (
        "a best: 0.2, -0.05 over b (medians)"
    )


def test_every_comparison_plot_is_written_with_a_caption(tmp_path):
    by_variant = {
        v: [record(v, s, [0.1, 0.8 + 0.01 * s + d, 0.9 + 0.01 * s + d], lr) for s in range(3)]
        for v, d, lr in (("a", 0.0, 0.1), ("b", 0.02, 0.01))
    }
    plots = comparison_plots(by_variant, "val_accuracy", tmp_path)
    assert [p.path.name for p in plots] == [
        "final_val_accuracy.png",
        "val_accuracy_vs_step.png",
        "val_accuracy_vs_time.png",
        "train_loss.png",
        "lr.png",
    ]
    for plot in plots:
        assert plot.caption[0].isupper() and "_" not in plot.caption.split(";")[0], plot.caption
        assert mpimg.imread(plot.path)[..., :3].var() > 1e-3


def test_lr_find_plot_stops_after_the_blow_up():
    lrs = [10 ** (-6 + i / 10) for i in range(60)]
    smoothed = [3 - math.sin(i / 59 * math.pi) * 2.5 if i < 40 else 3 + (i - 40) for i in range(60)]
    result = LRFindResult(lrs, smoothed, smoothed, 1e-4, 1e-5, False)
    first_above_start = next(i for i in range(30, 60) if smoothed[i] > smoothed[0])
    assert shown_points(result) == first_above_start + 3 < 60
    calm = LRFindResult(lrs[:20], smoothed[:20], smoothed[:20], 1e-5, 1e-6, False)
    assert shown_points(calm) == 20


@pytest.mark.parametrize("held_out", ["test", "validation"])
def test_the_metric_axes_name_the_held_out_split(tmp_path, monkeypatch, held_out):
    from nnopt.experiments import plots

    labels: dict[str, tuple[str, str]] = {}
    save = plots._save

    def keep(fig, path):
        ax = fig.axes[0]
        labels[path.name] = (ax.get_ylabel(), ax.get_xlabel())
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    import nnopt.experiments.final_plot as final_plot

    monkeypatch.setattr(final_plot, "_save", keep)
    by_variant = {v: [record(v, s, [0.5, 0.9], 0.1) for s in range(2)] for v in ("first", "second")}
    for records in by_variant.values():
        for r in records:
            r.summary["held_out"] = held_out
    comparison_plots(by_variant, "val_accuracy", tmp_path)
    assert labels["val_accuracy_vs_step.png"][0] == f"{held_out} accuracy"
    assert labels["val_accuracy_vs_time.png"][0] == f"{held_out} accuracy"
    assert labels["final_val_accuracy.png"][1].startswith(f"final {held_out} accuracy")


@pytest.mark.parametrize("low, high", [(0.6, 0.8), (0.7, 0.9), (0.9305, 0.9365), (0.1, 0.97)])
def test_percent_ticks_print_exactly(low, high):
    # Issue 20 item 11: ticks 2.5 points apart printed as 70% 73% 75% 78%.
    import matplotlib.pyplot as plt

    from nnopt.experiments.plots import percent_axis

    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    ax.set_ylim(low, high)
    percent_axis(ax.yaxis, low, high)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    plt.close(fig)
    printed = [float(label.rstrip("%")) / 100 for label in labels]
    assert np.allclose(printed, ax.get_yticks(), rtol=0, atol=1e-9), labels


def test_the_lr_is_drawn_at_every_step_not_only_at_evaluations(tmp_path):
    # Issue 20 item 11: a cosine with plateau cuts, evaluated every 20 of 60 steps, used to be
    # drawn from three points.
    from nnopt.experiments.plots import lr_by_step
    from nnopt.recipe import Recipe
    from nnopt.training import train

    recipe = Recipe.from_dict({
        "data": {"name": "digits"}, "model": {"hidden": [8]},
        "optimizer": {"name": "adam", "lr": 0.01}, "schedule": {"kind": "cosine"},
        "plateau": {"metric": "train_loss", "mode": "max", "patience": 0, "factor": 0.5},
        "train": {"steps": 60, "eval_every": 20},
    })  # fmt: skip
    result = train(recipe, tmp_path / "run")
    record = RunRecord("v", 0, result.summary, result.history, str(tmp_path / "run"))
    lrs = lr_by_step(record)
    assert lrs is not None and len(lrs) == 60
    for row in result.history:  # every evaluation's lr is the drawn one at its step
        assert lrs[row["step"] - 1] == pytest.approx(row["lr"], rel=1e-12)
    schedule = recipe.lr_schedule(60)
    assert list(lrs[:20]) == pytest.approx([schedule(k) for k in range(20)], rel=1e-12)
    assert lrs[45] == pytest.approx(schedule(45) / 2, rel=1e-12)  # after the cut at step 40
    path = comparison_plots({"v": [record]}, "val_accuracy", tmp_path / "plots")
    assert any(p.path.name == "lr.png" for p in path)
