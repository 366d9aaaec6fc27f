"""nnopt optimizers: torch.optim twins over shared update rules, one dispatch, flat buffers."""

from nnopt.optim.adagrad import AdaGrad, Adagrad
from nnopt.optim.adam import Adam, AdamW
from nnopt.optim.base import Optimizer
from nnopt.optim.rmsprop import RMSProp, RMSprop
from nnopt.optim.sgd import SGD

__all__ = ["SGD", "AdaGrad", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSProp", "RMSprop"]
