"""nnopt: the seed's optimization techniques for PyTorch, correct and fast."""

from nnopt.optim import SGD, AdaGrad, Adam, AdamW, Optimizer, RMSProp

__version__ = "0.1.0"

__all__ = ["SGD", "AdaGrad", "Adam", "AdamW", "Optimizer", "RMSProp", "__version__"]
