"""nnopt optimizers: torch.optim twins over shared update rules, one dispatch, flat buffers.

The classes exported here are those of the one table (``table.py``), plus the seed's
spelling ``AdaGrad`` (the same class as ``Adagrad``): a new optimizer is exported by its row.
"""

from nnopt.optim.adagrad import AdaGrad
from nnopt.optim.base import Optimizer
from nnopt.optim.muon_for import muon_for
from nnopt.optim.table import ROWS

CLASSES = {row.cls.__name__: row.cls for row in ROWS}
globals().update(CLASSES)

__all__ = ["AdaGrad", "Optimizer", *CLASSES, "muon_for"]
