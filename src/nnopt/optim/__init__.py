"""nnopt optimizers: thin classes over shared update rules and flat buffers."""

from nnopt.optim.adagrad import AdaGrad
from nnopt.optim.adam import Adam, AdamW
from nnopt.optim.base import Optimizer
from nnopt.optim.rmsprop import RMSProp
from nnopt.optim.sgd import SGD

__all__ = ["SGD", "AdaGrad", "Adam", "AdamW", "Optimizer", "RMSProp"]
