"""nnopt: the seed's optimization techniques for PyTorch, correct and fast."""

__version__ = "0.1.0"
