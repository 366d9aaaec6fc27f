"""Update rules: small pure functions over tensors.

Each rule updates ``param`` and its state tensors in place from ``grad`` and returns its
preconditioner ``d``: the per-coordinate divisor of the learning rate (1.0 for plain gradient
descent, a tensor for adaptive rules). The optimizer base uses ``eta / d`` as the step size of
the L1 proximal step; nothing extra is computed when L1 is off.

A rule knows nothing of parameter groups, flat buffers or devices: the same function runs on
one tensor or on a flat buffer holding millions of parameters.

Notation: theta the parameters, g the gradient, eta the learning rate, t the step (from 1).

Hyperparameters are Python numbers, except in a differentiable step (``differentiable=True``),
where one that requires grad (a Tensor lr, beta or weight decay) stays a Tensor so that
autograd sees it: the ``add_``-style helpers of ``ops`` take either, and a number takes torch's
fused-scalar op, so the numbers of the ordinary step do not change.
"""

from nnopt.optim.rules.adafactor import adafactor_
from nnopt.optim.rules.ademamix import ademamix_, ademamix_schedule
from nnopt.optim.rules.lion import lion_
from nnopt.optim.rules.muon import muon_, newton_schulz
from nnopt.optim.rules.nadam import nadam_
from nnopt.optim.rules.ops import Divisor, Scalar
from nnopt.optim.rules.radam import radam_
from nnopt.optim.rules.regularization import decoupled_decay_, soft_threshold_, with_l2
from nnopt.optim.rules.schedule_free import schedule_free_adamw_, schedule_free_sgd_
from nnopt.optim.rules.seed import adagrad_, adam_, momentum_, rmsprop_, sgd_
from nnopt.optim.rules.soap import soap_

__all__ = [
    "Divisor",
    "Scalar",
    "adagrad_",
    "adam_",
    "decoupled_decay_",
    "lion_",
    "momentum_",
    "rmsprop_",
    "sgd_",
    "soft_threshold_",
    "with_l2",
    "ademamix_",
    "ademamix_schedule",
    "soap_",
    "nadam_",
    "radam_",
    "muon_",
    "newton_schulz",
    "adafactor_",
    "schedule_free_adamw_",
    "schedule_free_sgd_",
]
