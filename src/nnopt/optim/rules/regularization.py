"""Regularization, shared by every rule and applied by the optimizer base around it:
coupled L2 before, decoupled decay before, the L1 proximal step after."""

from __future__ import annotations

import torch
from torch import Tensor

from nnopt.optim.rules.ops import Divisor, Scalar


def decoupled_decay_(param: Tensor, *, lr: Scalar, weight_decay: Scalar) -> None:
    """Decoupled weight decay (Loshchilov & Hutter 2019, AdamW): theta <- theta * (1 - eta * wd)."""
    param.mul_(1.0 - lr * weight_decay)


def with_l2(grad: Tensor, param: Tensor, *, l2: Scalar) -> Tensor:
    """Coupled L2: the gradient of l2/2 * ||theta||^2 added to g (torch's ``weight_decay``).

    g <- g + l2 * theta   (a new tensor: the user's .grad is never modified)
    """
    if isinstance(l2, Tensor):  # differentiable: param is updated in place after this
        return grad + param.clone() * l2
    return grad.add(param, alpha=l2)


def soft_threshold_(param: Tensor, threshold: Divisor) -> None:
    """L1 proximal step: theta <- sign(theta) * max(|theta| - tau, 0), tau = l1 * eta / d.

    With the plain gradient step size this is ISTA, so full-batch SGD converges to the Lasso
    solution with exact zeros. For adaptive rules tau is per coordinate (the rule's own
    step size eta / d), which is the proximal step in the metric the rule preconditions with.
    """
    # A differentiable step: autograd keeps what abs and sign read, so read a copy.
    source = param.clone() if torch.is_grad_enabled() else param
    shrunk = source.abs().sub_(threshold).clamp_(min=0.0)
    param.copy_(shrunk.mul_(source.sign()))
