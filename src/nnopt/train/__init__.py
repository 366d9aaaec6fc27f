"""Training from a recipe: the loop, checkpoints, metrics and outputs of a run."""

from nnopt.train.loop import Result, Trainer, TrainingDiverged, train

__all__ = ["Result", "Trainer", "TrainingDiverged", "train"]
