"""Training from a recipe: the loop, checkpoints, metrics and outputs of a run."""

from nnopt.training.loop import Result, Trainer, train

__all__ = ["Result", "Trainer", "train"]
