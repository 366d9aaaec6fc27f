"""PyTorch's optimizer test properties (``TestOptimRenewed``), ported to nnopt.

Every property runs on the configurations of ``torch.testing._internal.common_optimizers.optim_db``
(the ones PyTorch tests its own SGD, Adam, AdamW, Adagrad and RMSprop with), against nnopt's
class of the same name, in both layouts (``flat`` False / True) and all four kernel modes.
``configs.py`` builds the configurations, ``common.py`` holds the shared helpers, and
``conftest.py`` prints the counts (properties x configurations, passed, failed, skipped by
reason) at the end of a run.
"""
