"""What the held-out numbers are called, and how they print: the one rule, kept here.

A run's metrics rows, its recipe (``train.metric``) and its files key the held-out numbers
``val_loss``, ``val_accuracy``, ``val_perplexity``: "val_" means *held out*, whatever the
split. What a person reads (the progress bar, the last line, compare's live lines and table,
the plots, the report) names the split by the rule below, and prints a value one way.
"""

from __future__ import annotations

import math

# The split the held-out numbers are measured on.
TEST, VALIDATION = "test", "validation"

# Words for the metrics a run logs, after their split prefix ("val_" or "train_").
_WORDS = {"accuracy": "accuracy", "loss": "loss", "perplexity": "perplexity"}


def held_out_split(carved: bool) -> str:
    """The rule: "test" when the data set ships its own test split (MNIST-1D, a factory's
    ``x_test``), "validation" when the split was carved from the training data (by nnopt,
    as for digits, or because ``data.holdout = "validation"`` set the test split aside)."""
    return VALIDATION if carved else TEST


def metric_label(metric: str, held_out: str = VALIDATION) -> str:
    """``val_accuracy`` -> "test accuracy" or "validation accuracy"; ``train_loss`` ->
    "training loss"; ``lr`` -> "learning rate"."""
    if metric == "lr":
        return "learning rate"
    split, _, word = metric.partition("_")
    if split == "val" and word in _WORDS:
        return f"{held_out} {_WORDS[word]}"
    if split == "train" and word in _WORDS:
        return f"training {_WORDS[word]}"
    return metric


def split_key(metric: str, held_out: str) -> str:
    """The key a summary also gives a held-out number under its split's own name:
    ``val_accuracy`` -> ``test_accuracy`` or ``validation_accuracy`` (others unchanged)."""
    split, _, word = metric.partition("_")
    return f"{held_out}_{word}" if split == "val" and word in _WORDS else metric


def format_metric(metric: str, value: float) -> str:
    """The one format: an accuracy as a percentage with two decimals (97.21%), a loss or a
    perplexity with four significant digits (0.1446; 0.000216, not 0.0002)."""
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.2%}" if metric.endswith("accuracy") else f"{value:.4g}"


def metric_text(metric: str, value: float, held_out: str = VALIDATION) -> str:
    """ "test accuracy 97.21%": a metric's name by the rule and its value in the one format."""
    return f"{metric_label(metric, held_out)} {format_metric(metric, value)}"
