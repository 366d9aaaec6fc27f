"""Training from a recipe: the loop, checkpoints, metrics and outputs of a run."""

from nnopt.training.loop import Trainer, train
from nnopt.training.result import Result

__all__ = ["Result", "Trainer", "train"]
