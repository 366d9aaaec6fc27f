"""The one case table of the optimizer tests: one :class:`Case` per row of ``optim/table.py``.

Every generic optimizer test (``test_optim_cases*.py``, ``test_group_kernel.py``,
``test_table.py``) runs over ``CASES``; ``test_every_row_has_a_case`` fails when a table row
has none, so a new optimizer is stepped by every generic test once its case row exists.

A case holds what the tests cannot read from nnopt itself without trusting it:

- ``reference``: the rule in float64, written from the paper or SEED.md (plain torch ops on
  one tensor, never nnopt's code); :func:`reference_step` wraps it in the documented order
  of one update (``optim/base.py``): maximize, coupled L2, decoupled decay, the rule, L1 as
  a soft threshold at ``l1 * lr / d`` with ``d`` the rule's preconditioner;
- ``option_sets``: kwargs that exercise each option; the first two run in every kernel mode
  and in the group kernel's tests, so they hold the options the kernels take (maximize,
  which the group kernel leaves to the per-tensor paths, comes later); those the torch twin
  accepts are compared with it;
- convergence runs per test problem (lr, steps, and the distance to the optimum to reach);
- ``holds``: the paper's / torch's defaults the row must hold (the table reads them from the
  class signature: this is the check that it reads the right ones);
- tolerances, float64 against the reference and float32 against torch and between kernels.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from nnopt.optim import table

# A rule: (theta, g, state, options, t) -> (new theta, preconditioner d). ``state`` is the
# tensor's own dict, filled on its first step; t counts steps from 1.
Rule = Callable[[Tensor, Tensor, dict, dict, int], tuple[Tensor, Any]]


@dataclass(frozen=True)
class Converge:
    """Run ``steps`` steps at ``lr`` (plus ``options``) and end within ``tol`` of the optimum.

    ``tol`` has a margin of several times over the observed distance: it says what the
    method reaches at a constant lr (see the problems in ``test_optim_cases_convergence``).
    """

    lr: float
    steps: int
    tol: float
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    row: str  # the table row's name
    reference: Rule
    option_sets: tuple[dict[str, Any], ...]
    quadratic: tuple[Converge, ...]
    rosenbrock: tuple[Converge, ...]
    holds: dict[str, Any]  # option -> value every param group of the row must hold
    lr: float = 0.01  # the lr of the step-for-step tests
    implied: dict[str, Any] = field(default_factory=dict)  # what the class fixes unseen (AdamW)
    # Options torch's twin reads from its constructor only, never per param group.
    constructor_only: frozenset[str] = frozenset()
    tol64: float = 1e-10  # float64 vs the reference: max |a - b| / max(max |b|, 1)
    tol32: float = 1e-5  # float32 vs torch, and between layouts and kernels
    # The row takes 2-D parameters only (torch's Muon): the tests' shapes become matrices
    # (:func:`as_matrix`) and a model's other parameters are left out.
    matrices: bool = False
    decays_in_rule: bool = False  # the reference applies decoupled decay itself (Adafactor)
    group_kernel: bool = True  # the row has kernels for test_group_kernel to compare

    def shapes(self, shapes):
        """The test shapes as this row takes them."""
        return tuple(map(as_matrix, shapes)) if self.matrices else tuple(shapes)

    def trainable(self, params) -> list:
        """The parameters of a model this row takes."""
        return [p for p in params if p.ndim == 2] if self.matrices else list(params)

    # The rule applies weight_decay itself (schedule-free: the paper's decay at y, through z),
    # so reference_step adds no coupled or decoupled term for it.
    decay_in_rule: bool = False
    # The lr of step t that L1's threshold scales (schedule-free's warm-up); None: o["lr"].
    step_lr: Callable[[dict, int], float] | None = None

    @property
    def table_row(self) -> table.Row:
        return table.BY_NAME[self.row]

    @property
    def twin(self) -> type[torch.optim.Optimizer] | None:
        name = self.table_row.twin
        return getattr(torch.optim, name) if name else None

    def options(self, option_set: dict[str, Any]) -> dict[str, Any]:
        """Every option of one update under ``option_set``: the class signature's defaults,
        the alias's, the case's lr, the set (what the reference reads)."""
        row = self.table_row
        signature = inspect.signature(row.cls.__init__).parameters.values()
        defaults = {p.name: p.default for p in signature if p.default is not p.empty}
        return {**defaults, **self.implied, **row.defaults, "lr": self.lr, **option_set}

    def twin_sets(self) -> list[int]:
        """The indices of the option sets torch's twin takes as they are (with the alias's
        defaults): nnopt's extras (l1, l2, ...) are left out by the twin's signature."""
        if self.twin is None:
            return []
        accepted = set(inspect.signature(self.twin.__init__).parameters)
        aliased = set(self.table_row.defaults)
        return [i for i, s in enumerate(self.option_sets) if aliased | set(s) <= accepted]


def as_matrix(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A test shape as a matrix: a vector (n,) as a tall (n, 1), a scalar as (1, 1), more
    dimensions as (first, the rest)."""
    if len(shape) == 2:
        return shape
    if len(shape) < 2:
        return (shape[0] if shape else 1, 1)
    return (shape[0], math.prod(shape[1:]))


# --- the reference rules (float64, from the papers and SEED.md) ------------------------------


def _once(state: dict, key: str, value: Tensor) -> Tensor:
    return state.setdefault(key, value)


def sgd_rule(theta, g, s, o, t):
    """Gradient descent; heavy ball b <- mu b + (1 - tau) g (b = g at first, torch's), theta
    <- theta - eta b; Nesterov theta <- theta - eta (g + mu b) (Sutskever et al. 2013)."""
    mu, lr = o["momentum"], o["lr"]
    if not mu:
        return theta - lr * g, 1.0
    if "b" in s:
        s["b"] = mu * s["b"] + (1 - o["dampening"]) * g
    else:
        s["b"] = g.clone()
    direction = g + mu * s["b"] if o["nesterov"] else s["b"]
    return theta - lr * direction, 1.0


def adagrad_rule(theta, g, s, o, t):
    """AdaGrad (Duchi et al. 2011): G <- G + g^2, theta <- theta - eta_t g / (sqrt(G) + eps),
    eta_t = eta / (1 + (t - 1) lr_decay) (torch's decay of the step size)."""
    G = _once(s, "G", torch.full_like(theta, o["initial_accumulator_value"]))
    s["G"] = G = G + g * g
    d = G.sqrt() + o["eps"]
    return theta - o["lr"] / (1 + (t - 1) * o["lr_decay"]) * g / d, d


def rmsprop_rule(theta, g, s, o, t):
    """RMSProp (SEED.md; Tieleman & Hinton 2012): E <- rho E + (1 - rho) g^2, theta <- theta -
    eta g / sqrt(E + eps) (the seed) or / (sqrt(E) + eps) (torch); centered (Graves 2013)
    subtracts the squared mean gradient; momentum: b <- mu b + g / d, theta <- theta - eta b."""
    rho = o["alpha"] if "alpha" in o else o["rho"]
    E = rho * _once(s, "E", torch.zeros_like(theta)) + (1 - rho) * g * g
    s["E"] = spread = E
    if o["centered"]:
        s["gbar"] = rho * _once(s, "gbar", torch.zeros_like(theta)) + (1 - rho) * g
        spread = E - s["gbar"] ** 2
    d = (spread + o["eps"]).sqrt() if o["eps_inside_sqrt"] else spread.sqrt() + o["eps"]
    if not o["momentum"]:
        return theta - o["lr"] * g / d, d
    s["b"] = o["momentum"] * _once(s, "b", torch.zeros_like(theta)) + g / d
    return theta - o["lr"] * s["b"], d


def adam_rule(theta, g, s, o, t):
    """Adam (SEED.md; Kingma & Ba 2015): m, v moving averages of g and g^2, m_hat = m / (1 -
    b1^t), v_hat = v / (1 - b2^t), theta <- theta - eta m_hat / (sqrt(v_hat) + eps); AMSGrad
    (Reddi et al. 2018) takes v_hat from the running maximum of v."""
    b1, b2 = o["betas"]
    s["m"] = b1 * _once(s, "m", torch.zeros_like(theta)) + (1 - b1) * g
    s["v"] = second = b2 * _once(s, "v", torch.zeros_like(theta)) + (1 - b2) * g * g
    if o["amsgrad"]:
        s["vmax"] = second = torch.maximum(_once(s, "vmax", torch.zeros_like(theta)), s["v"])
    d = (second / (1 - b2**t)).sqrt() + o["eps"]
    return theta - o["lr"] * (s["m"] / (1 - b1**t)) / d, d


def lion_rule(theta, g, s, o, t):
    """Lion (Chen et al. 2023, Algorithm 2): c = b1 m + (1 - b1) g, theta <- theta - eta
    sign(c), m <- b2 m + (1 - b2) g; every coordinate moves by eta (d = 1)."""
    b1, b2 = o["betas"]
    m = _once(s, "m", torch.zeros_like(theta))
    c = b1 * m + (1 - b1) * g
    s["m"] = b2 * m + (1 - b2) * g
    return theta - o["lr"] * c.sign(), 1.0


def ademamix_rule(theta, g, s, o, t):
    """AdEMAMix (Pagliardini et al. 2024, Algorithm 1): m1 = b1 m1 + (1 - b1) g, m2 = b3 m2 +
    (1 - b3) g, nu = b2 nu + (1 - b2) g^2, theta <- theta - eta (m1 / (1 - b1^t) + alpha m2) /
    (sqrt(nu / (1 - b2^t)) + eps); with T = t_alpha_beta3, alpha_t = min(t alpha / T, alpha)
    and b3_t = min(exp(ln b1 ln b3 / ((1 - t/T) ln b3 + (t/T) ln b1)), b3)."""
    b1, b2, b3 = o["betas"]
    alpha, T = o["alpha"], o["t_alpha_beta3"]
    if T is not None:
        alpha = min(t * alpha / T, alpha)
        exponent = math.log(b1) * math.log(b3) / ((1 - t / T) * math.log(b3) + t / T * math.log(b1))
        b3 = min(math.exp(exponent), b3)
    s["m1"] = b1 * _once(s, "m1", torch.zeros_like(theta)) + (1 - b1) * g
    s["m2"] = b3 * _once(s, "m2", torch.zeros_like(theta)) + (1 - b3) * g
    s["nu"] = b2 * _once(s, "nu", torch.zeros_like(theta)) + (1 - b2) * g * g
    d = (s["nu"] / (1 - b2**t)).sqrt() + o["eps"]
    return theta - o["lr"] * (s["m1"] / (1 - b1**t) + alpha * s["m2"]) / d, d


def soap_rule(theta, g, s, o, t):
    """SOAP (Vyas et al. 2024, Algorithm 3, with the authors' code's first step, bias
    correction, shampoo_beta, merge_dims, precondition_1d and max_precond_dim). Per rotated
    dimension k of G (shaped as the merged tensor): L_k = b_s L_k + (1 - b_s) G_(k) G_(k)^T.
    Call 1: Q_k = eigenvectors of L_k (decreasing), no update. Call c > 1, t = c - 1:
    G' = G x_k Q_k^T; M = b1 M + (1 - b1) G (M in theta's coordinates, the paper's form);
    M' = M x_k Q_k^T; V = b2 V + (1 - b2) G'^2; N = (M' / (sqrt(V) + eps)) x_k Q_k,
    times sqrt(1 - b2^t) / (1 - b1^t); theta <- theta - eta N; every f steps, per k: sort
    Q_k's columns (and V along k) by diag(Q_k^T L_k Q_k), decreasing, then Q_k = QR(L_k Q_k).
    d (L1): 1 / diag of the preconditioner in theta's coordinates."""
    b1, b2 = o["betas"]
    b_s = o["shampoo_beta"] if o["shampoo_beta"] >= 0 else b2
    cap, shape = o["max_precond_dim"], tuple(theta.shape)
    if o["merge_dims"] and len(shape) != 1:
        shape = _merge(shape, cap)
    G = g.reshape(shape)
    if not s:
        on = [n <= cap for n in shape] if theta.dim() != 1 or o["precondition_1d"] else [False]
        s["L"] = [
            torch.zeros(n, n, dtype=g.dtype) if r else None for n, r in zip(shape, on, strict=True)
        ]
        s["M"], s["V"] = torch.zeros_like(G), torch.zeros_like(G)
    for k, L in enumerate(s["L"]):
        if L is not None:
            u = G.movedim(k, 0).reshape(shape[k], -1)  # the mode-k unfolding
            s["L"][k] = b_s * L + (1 - b_s) * (u @ u.T)
    if t == 1:
        s["Q"] = [None if L is None else torch.linalg.eigh(L)[1].flip(1) for L in s["L"]]
        return theta, math.inf
    t -= 1

    def along(x, qs):  # x x_k q_k: contract x's dim k with q_k's rows
        for k, q in enumerate(qs):
            if q is not None:
                x = torch.movedim(torch.tensordot(x, q, dims=([k], [0])), -1, k)
        return x

    Qs = s["Q"]
    Qt = [None if q is None else q.T for q in Qs]
    s["M"] = b1 * s["M"] + (1 - b1) * G
    rotated = along(G, Qs)
    s["V"] = b2 * s["V"] + (1 - b2) * rotated**2
    denom = s["V"].sqrt() + o["eps"]
    scale = math.sqrt(1 - b2**t) / (1 - b1**t) if o["correct_bias"] else 1.0
    N = along(along(s["M"], Qs) / denom, Qt) * scale
    diagonal = along(1 / denom, [None if q is None else q.T**2 for q in Qs]) * scale
    if o["normalize_grads"]:
        rms = N.pow(2).mean().sqrt() + 1e-30
        N, diagonal = N / rms, diagonal / rms
    if t % o["precondition_frequency"] == 0:
        for k, (L, q) in enumerate(zip(s["L"], Qs, strict=True)):
            if L is not None:
                order = torch.argsort(torch.diag(q.T @ L @ q), descending=True)
                s["V"] = s["V"].index_select(k, order)
                Qs[k] = torch.linalg.qr(L @ q[:, order])[0]
    return theta - o["lr"] * N.reshape(theta.shape), (1 / diagonal).reshape(theta.shape)


def _merge(shape, cap):
    """The authors' merge_dims: neighbours multiplied left to right while <= cap."""
    out, run = [], 1
    for n in shape:
        if run * n > cap:
            out.append(run if run > 1 else n)
            run = n if run > 1 else 1
        else:
            run *= n
    return tuple(out + [run]) if run > 1 or not out else tuple(out)


def nadam_rule(theta, g, s, o, t):
    """NAdam (Dozat 2016; torch's schedule): mu_t = b1 (1 - 0.5 * 0.96^(t psi)), P_t = mu_1
    ... mu_t, m and v as Adam's, theta <- theta - eta [(1 - mu_t) / (1 - P_t) g + mu_{t+1} /
    (1 - P_t mu_{t+1}) m] / (sqrt(v / (1 - b2^t)) + eps)."""
    b1, b2 = o["betas"]
    psi = o["momentum_decay"]
    mu_t = b1 * (1 - 0.5 * 0.96 ** (t * psi))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
    s["P"] = product = s.get("P", 1.0) * mu_t
    s["m"] = b1 * _once(s, "m", torch.zeros_like(theta)) + (1 - b1) * g
    s["v"] = b2 * _once(s, "v", torch.zeros_like(theta)) + (1 - b2) * g * g
    d = (s["v"] / (1 - b2**t)).sqrt() + o["eps"]
    direction = (1 - mu_t) / (1 - product) * g + mu_next / (1 - product * mu_next) * s["m"]
    return theta - o["lr"] * direction / d, d


def radam_rule(theta, g, s, o, t):
    """RAdam (Liu et al. 2020, Algorithm 2, with torch's threshold rho_t > 5): m_hat = m /
    (1 - b1^t); rho_t = rho_inf - 2 t b2^t / (1 - b2^t), rho_inf = 2 / (1 - b2) - 1; when
    rectified, theta <- theta - eta r_t m_hat / sqrt(v / (1 - b2^t)) with eps added to sqrt(v)
    (torch's), r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t));
    otherwise theta <- theta - eta m_hat."""
    b1, b2 = o["betas"]
    s["m"] = b1 * _once(s, "m", torch.zeros_like(theta)) + (1 - b1) * g
    s["v"] = b2 * _once(s, "v", torch.zeros_like(theta)) + (1 - b2) * g * g
    m_hat = s["m"] / (1 - b1**t)
    rho_inf = 2 / (1 - b2) - 1
    rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
    if rho_t <= 5:
        return theta - o["lr"] * m_hat, 1.0
    r = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
    d = (s["v"].sqrt() + o["eps"]) / ((1 - b2**t) ** 0.5 * r)
    return theta - o["lr"] * m_hat / d, d


def muon_rule(theta, g, s, o, t):
    """Muon (Jordan et al. 2024): B <- mu B + (1 - mu) g; U = (1 - mu) g + mu B (Nesterov)
    or B; X = U / ||U||_F as a (rows, rest) matrix, transposed when tall; ns_steps times
    X <- a X + (b A + c A^2) X with A = X X^T; theta <- theta - eta r X, r = sqrt(max(1, A/B))
    or 0.2 sqrt(max(A, B)) (Liu et al. 2025). In float64 (torch's runs it in bfloat16)."""
    mu = o["momentum"]
    s["B"] = B = mu * _once(s, "B", torch.zeros_like(theta)) + (1 - mu) * g
    U = (1 - mu) * g + mu * B if o["nesterov"] else B
    M = U.reshape(as_matrix(tuple(U.shape)))
    X = M.T if M.shape[0] > M.shape[1] else M
    X = X / max(X.norm().item(), o["eps"])
    a, b, c = o["ns_coefficients"]
    for _ in range(o["ns_steps"]):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    X = X.T if M.shape[0] > M.shape[1] else X
    rows, cols = M.shape
    if o["adjust_lr_fn"] == "match_rms_adamw":
        r = 0.2 * math.sqrt(max(rows, cols))
    else:
        r = math.sqrt(max(1, rows / cols))
    return theta - o["lr"] * r * X.reshape(theta.shape), 1 / r


def adafactor_rule(theta, g, s, o, t):
    """Adafactor (Shazeer & Stern 2018) as torch reads it: 1 - beta2_t = t^decay, alpha =
    max(eps2, RMS(theta)) min(eta, 1/sqrt(t)), decoupled decay after alpha; a matrix keeps
    row and column means of g^2 (V = R C / max(mean R, eps1)), others V of g^2; U = g /
    sqrt(max(V, eps1^2)); theta <- theta - alpha U / max(1, RMS(U) / d)."""
    eps1, eps2 = o["eps"]
    eps1 = torch.finfo(torch.float64).eps if eps1 is None else eps1
    w = t ** o["beta2_decay"]
    alpha = max(eps2, theta.pow(2).mean().sqrt().item()) * min(o["lr"], t**-0.5)
    if o.get("decoupled_weight_decay", True):
        theta = theta * (1 - o["lr"] * o["weight_decay"])
    if g.ndim > 1:
        s["R"] = R = (1 - w) * _once(s, "R", torch.zeros_like(g[..., :1])) + w * (g * g).mean(
            -1, keepdim=True
        )
        s["C"] = C = (1 - w) * _once(s, "C", torch.zeros_like(g[..., :1, :])) + w * (g * g).mean(
            -2, keepdim=True
        )
        V = R @ C / R.mean(-2, keepdim=True).clamp(min=eps1)
    else:
        s["V"] = V = (1 - w) * _once(s, "V", torch.zeros_like(g)) + w * g * g
    root = V.clamp(min=eps1 * eps1).sqrt()
    U = g / root
    clip = max(1.0, U.pow(2).mean().sqrt().item() / o["d"])
    return theta - alpha / clip * U, o["lr"] * clip * root / alpha


def muon_adamw_rule(theta, g, s, o, t):
    """muon_for's split by shape: Muon on 2 or more dimensions, AdamW (adamw_betas, adamw_eps)
    on the rest."""
    if theta.ndim >= 2:
        return muon_rule(theta, g, s, o, t)
    return adam_rule(theta, g, s, {**o, "betas": o["adamw_betas"], "eps": o["adamw_eps"],
                                   "amsgrad": False}, t)  # fmt: skip


def _warmed_up_lr(o: dict, t: int) -> float:
    """Schedule-free's linear warm-up: lr min(t / warmup_steps, 1)."""
    return o["lr"] * min(t / o["warmup_steps"], 1.0) if o["warmup_steps"] else o["lr"]


def schedule_free_rule(theta, g, s, o, t):
    """Schedule-Free SGD / AdamW (Defazio et al. 2024, Algorithm 1), theta = y, the point
    where g is taken; x recovered from y and z by y = (1 - beta) z + beta x:
    u = g / d + wd y (d = 1, or Adam's sqrt(v / (1 - b2^t)) + eps);  z <- z - eta_t u;
    x <- (1 - c) x + c z with c = w_t / sum_i w_i, w_t = t^r max_{i<=t}(eta_i)^weight_lr_power;
    y = (1 - beta) z + beta x; eta_t warmed up linearly over warmup_steps."""
    adam = "betas" in o
    beta = o["betas"][0] if adam else o["momentum"]
    lr = _warmed_up_lr(o, t)
    s["lr_max"] = lr_max = max(s.get("lr_max", -1.0), lr)
    w = t ** o["r"] * lr_max ** o["weight_lr_power"]
    s["weights"] = total = s.get("weights", 0.0) + w
    c = w / total if total else 0.0
    z = _once(s, "z", theta.clone())
    x = (theta - (1 - beta) * z) / beta
    d = 1.0
    if adam:
        b2 = o["betas"][1]
        s["v"] = b2 * _once(s, "v", torch.zeros_like(theta)) + (1 - b2) * g * g
        d = (s["v"] / (1 - b2**t)).sqrt() + o["eps"]
    u = g / d + o["weight_decay"] * theta
    s["z"] = z = z - lr * u
    x = (1 - c) * x + c * z
    return (1 - beta) * z + beta * x, d


def reference_step(case: Case, theta: Tensor, g: Tensor, s: dict, o: dict, t: int) -> Tensor:
    """One update in the order ``optim/base.py`` documents (torch's, plus nnopt's L1)."""
    lr, wd = o["lr"], 0.0 if case.decay_in_rule else o["weight_decay"]
    decoupled = o.get("decoupled_weight_decay", False)
    if o.get("maximize", False):  # (torch's Muon has no maximize)
        g = -g
    g = g + (o.get("l2", 0.0) + (0.0 if decoupled else wd)) * theta
    if decoupled and not case.decays_in_rule:
        theta = theta * (1 - lr * wd)
    theta, d = case.reference(theta, g, s, o, t)
    if o.get("l1", 0.0):
        lr = case.step_lr(o, t) if case.step_lr else lr
        theta = theta.sign() * (theta.abs() - o["l1"] * lr / d).clamp(min=0)
    return theta


# --- the cases -------------------------------------------------------------------------------

# Adam with L1 in float32: where v is tiny, d = sqrt(v_hat) + eps is too, so the per-coordinate
# threshold l1 * lr / d is large and an element near its kink turns one rounding of the kernel
# (vs the eager rule) into a visible difference. Adam's L1 sets use l2 = 1e-2, where
# test_group_kernel's elementwise comparison holds with a 10x margin (with l2 = 0.05 one
# element in 65k sat at 2x its tolerance).

# Every regularizer nnopt has at once: L1's per-coordinate threshold, L2 and decoupled decay.
ALL_REGULARIZERS = dict(l1=0.01, l2=0.1, weight_decay=0.2, decoupled_weight_decay=True)


def _sgd_case(row: str, sets: tuple, quadratic: Converge, rosenbrock: Converge, holds) -> Case:
    return Case(row, sgd_rule, sets, (quadratic,), (rosenbrock,), holds, lr=0.05)


def _schedule_free_case(row: str, sets: tuple, quadratic: Converge, rosenbrock: Converge,
                        holds: dict) -> Case:  # fmt: skip
    """The package's defaults beside ``holds``; the rule owns weight_decay, warmed-up lr."""
    shared = {"weight_decay": 0, "warmup_steps": 0, "r": 0.0, "weight_lr_power": 2.0}
    return Case(row, schedule_free_rule, sets, (quadratic,), (rosenbrock,), {**holds, **shared},
                decay_in_rule=True, step_lr=_warmed_up_lr)  # fmt: skip


CASES: dict[str, Case] = {
    case.row: case
    for case in (
        _sgd_case(
            "sgd",
            ({}, ALL_REGULARIZERS, dict(weight_decay=0.05, maximize=True)),
            Converge(0.035, 500, 1e-6),
            # Plain descent crawls along the curved valley: progress, not precision.
            Converge(0.002, 2000, 0.05),
            {"momentum": 0.0, "nesterov": False, "dampening": 0.0},
        ),
        _sgd_case(
            "momentum",
            (
                dict(dampening=0.1, weight_decay=0.05),
                dict(l1=1e-3, l2=0.05),
                dict(momentum=0.5, maximize=True),
                ALL_REGULARIZERS,
            ),
            Converge(0.01, 500, 1e-6, dict(momentum=0.7)),
            Converge(0.002, 1000, 1e-3),
            {"momentum": 0.9, "nesterov": False},
        ),
        _sgd_case(
            "nesterov",
            ({}, dict(l1=1e-3, weight_decay=0.01), dict(momentum=0.5, maximize=True)),
            Converge(0.01, 500, 1e-6, dict(momentum=0.7)),
            Converge(0.001, 2000, 1e-3),
            {"momentum": 0.9, "nesterov": True},
        ),
        Case(
            "adagrad",
            adagrad_rule,
            (
                dict(initial_accumulator_value=0.3, lr_decay=0.01),
                dict(l1=1e-3, l2=0.05),
                dict(weight_decay=0.05, eps=1e-3, maximize=True),
                ALL_REGULARIZERS,
            ),
            (Converge(0.5, 200, 1e-6),),
            # The ever-growing accumulator stalls it in the valley: progress, not precision.
            (Converge(2.0, 2000, 0.5),),
            {"eps": 1e-10, "lr_decay": 0.0, "initial_accumulator_value": 0.0},
            lr=0.1,
            constructor_only=frozenset({"initial_accumulator_value"}),
        ),
        Case(
            "rmsprop",
            rmsprop_rule,
            (
                dict(centered=True, momentum=0.5, rho=0.8),
                dict(l1=1e-3, l2=0.05),
                dict(eps_inside_sqrt=False, weight_decay=0.05, maximize=True),
                ALL_REGULARIZERS,
            ),
            # At a constant lr RMSProp hovers within O(lr) of the optimum.
            (Converge(0.01, 500, 2e-2),),
            (Converge(0.001, 1500, 3e-3, dict(momentum=0.9)),),
            {"alpha": 0.9, "eps": 1e-8, "eps_inside_sqrt": True},
        ),
        Case(
            "rmsprop_torch",
            rmsprop_rule,
            (
                dict(centered=True, momentum=0.9, alpha=0.95, eps=1e-6),
                dict(l1=1e-3, l2=0.05, eps_inside_sqrt=True),
                dict(momentum=0.5, weight_decay=0.05, maximize=True),
                ALL_REGULARIZERS,
            ),
            (Converge(0.01, 500, 2e-2, dict(alpha=0.9, centered=True, momentum=0.9)),),
            (Converge(0.001, 1500, 3e-3, dict(alpha=0.9, centered=True, momentum=0.9)),),
            {"alpha": 0.99, "eps": 1e-8, "eps_inside_sqrt": False},
        ),
        Case(
            "adam",
            adam_rule,
            (
                dict(betas=(0.8, 0.99), amsgrad=True, weight_decay=0.05),
                dict(l1=1e-3, l2=1e-2),
                dict(weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
                {**ALL_REGULARIZERS, "amsgrad": True},
            ),
            (Converge(0.05, 500, 1e-6), Converge(0.05, 500, 1e-6, dict(amsgrad=True))),
            (Converge(0.05, 2000, 1e-3), Converge(0.1, 2000, 1e-3, dict(amsgrad=True))),
            {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False},
        ),
        Case(
            "adamw",
            adam_rule,
            (
                dict(weight_decay=0.1, amsgrad=True),
                dict(l1=1e-3, l2=1e-2),
                dict(betas=(0.5, 0.9), eps=1e-6, maximize=True),
            ),
            (Converge(0.05, 500, 1e-6, dict(weight_decay=0.01)),),
            # Decay pulls toward 0, so the minimizer moves off (1, 1) by O(weight_decay).
            (Converge(0.05, 2000, 1e-2, dict(weight_decay=1e-4)),),
            {"weight_decay": 1e-2, "decoupled_weight_decay": True},
            implied={"decoupled_weight_decay": True},
        ),
        Case(
            "lion",
            lion_rule,
            (
                dict(betas=(0.95, 0.98), weight_decay=0.1),
                dict(l1=1e-3, l2=1e-2),
                dict(weight_decay=0.1, decoupled_weight_decay=False, maximize=True),
                ALL_REGULARIZERS,
            ),
            # Steps of exactly lr in every coordinate: it ends within about lr of the optimum.
            (Converge(0.01, 500, 3e-2),),
            (Converge(0.002, 3000, 5e-2),),  # (observed 0.009)
            {"betas": (0.9, 0.99), "weight_decay": 0.0, "decoupled_weight_decay": True},
            lr=1e-3,
        ),
        Case(
            "ademamix",
            ademamix_rule,
            (
                dict(t_alpha_beta3=20, weight_decay=0.1),
                dict(l1=1e-3, l2=1e-2, betas=(0.8, 0.99, 0.999), alpha=2.0),
                dict(weight_decay=0.1, decoupled_weight_decay=False, maximize=True),
                {**ALL_REGULARIZERS, "t_alpha_beta3": 10.0, "alpha": 8.0},
            ),
            # The slow EMA (b3 = 0.9999, ~7000 steps) still carries the start after 500 steps:
            # a b3 of 0.99-0.999 shows convergence, the defaults progress (observed 0.0035).
            (
                Converge(0.03, 500, 1e-5, dict(betas=(0.9, 0.999, 0.99), alpha=2.0)),
                Converge(0.1, 500, 2e-2),
            ),
            (
                Converge(0.05, 2000, 1e-5, dict(betas=(0.9, 0.999, 0.99), alpha=2.0)),
                Converge(0.05, 2000, 3e-2, dict(betas=(0.9, 0.999, 0.999), t_alpha_beta3=500)),
            ),
            {"betas": (0.9, 0.999, 0.9999), "alpha": 5.0, "t_alpha_beta3": None, "eps": 1e-8},
        ),
        Case(
            "soap",
            soap_rule,
            (
                dict(precondition_frequency=3, weight_decay=0.05),
                # max_precond_dim=4 leaves (3, 5)'s 5 unrotated: its first factor G^T G has
                # rank 3, so which basis eigh returns for the null space is decided by
                # rounding, and L2's g + l2 theta rounds differently here and in the base.
                dict(
                    precondition_frequency=4,
                    max_precond_dim=4,
                    precondition_1d=True,
                    l1=1e-3,
                    l2=0.01,
                ),
                dict(
                    merge_dims=True,  # (2, 3, 3, 3) -> (6, 3, 3)
                    max_precond_dim=6,
                    normalize_grads=True,
                    correct_bias=False,
                    shampoo_beta=0.9,
                    precondition_frequency=2,
                    maximize=True,
                ),
                {**ALL_REGULARIZERS, "precondition_frequency": 5, "max_precond_dim": 4},
            ),
            (Converge(0.01, 500, 1e-3),),
            (Converge(0.01, 2000, 1e-2),),
            {
                "betas": (0.95, 0.95),
                "shampoo_beta": -1,
                "eps": 1e-8,
                "weight_decay": 0.01,
                "precondition_frequency": 10,
                "max_precond_dim": 10000,
                "decoupled_weight_decay": True,
            },
        ),
        Case(
            "nadam",
            nadam_rule,
            (
                dict(betas=(0.8, 0.99), momentum_decay=0.01, weight_decay=0.05),
                dict(l1=1e-3, l2=1e-2),
                dict(weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
                ALL_REGULARIZERS,
            ),
            (Converge(0.05, 500, 1e-6),),
            (Converge(0.02, 2000, 0.1),),  # (observed 0.039)
            {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "momentum_decay": 4e-3},
            # torch keeps the product of the mu_t in float32 (state["mu_product"]), and so
            # does nnopt, to cross state dicts with it: float64 runs agree to that rounding.
            tol64=1e-7,
        ),
        Case(
            "radam",
            radam_rule,
            (
                # beta2 = 0.99: the first 5 steps unrectified, then rectified.
                dict(betas=(0.8, 0.99), weight_decay=0.05),
                dict(l1=1e-3, l2=1e-2),
                dict(weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
                ALL_REGULARIZERS,
            ),
            (Converge(0.05, 500, 1e-6),),
            # Its first 5 steps are momentum SGD on Rosenbrock's raw gradient (~1e3 at the
            # start): lr 0.015 already diverges there. beta2 = 0.99 rectifies sooner after.
            (Converge(0.01, 3000, 3e-3, dict(betas=(0.9, 0.99))),),  # (observed 4e-4)
            {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
        ),
        Case(
            "adafactor",
            adafactor_rule,
            (
                dict(weight_decay=0.1, d=2.0),
                dict(l1=1e-3, l2=1e-2),
                dict(beta2_decay=-0.5, eps=(1e-30, 1e-3), maximize=True),
                {**ALL_REGULARIZERS, "decoupled_weight_decay": False},
            ),
            (Converge(0.05, 2000, 1e-4),),  # (observed 2e-6)
            # Relative steps (a share of RMS(theta)) crawl in the valley: progress, not precision.
            (Converge(0.2, 2000, 0.6),),  # (observed 0.29)
            {"beta2_decay": -0.8, "eps": (None, 1e-3), "d": 1.0, "weight_decay": 0.0},
            lr=0.05,
            decays_in_rule=True,
            group_kernel=False,
        ),
        Case(
            "muon_torch",
            muon_rule,
            (
                dict(weight_decay=0.05, adjust_lr_fn="match_rms_adamw"),
                dict(l1=1e-3, l2=1e-2),
                dict(nesterov=False, momentum=0.9, ns_steps=3, adjust_lr_fn="original"),
                ALL_REGULARIZERS,
            ),
            # On a (2, 1) matrix Muon is normalized gradient descent: within about lr.
            # (few steps: a Newton-Schulz step costs ~1 ms on a tiny matrix)
            (Converge(0.01, 400, 2e-2, dict(weight_decay=0.0)),),  # (observed 5e-3)
            (Converge(0.005, 1000, 4e-2, dict(weight_decay=0.0)),),  # (observed 1e-2)
            {"momentum": 0.95, "nesterov": True, "weight_decay": 0.1, "ns_steps": 5},
            lr=0.02,
            # bfloat16 Newton-Schulz (torch's) vs the float64 reference: observed 3e-3 over 30
            # steps with L1 (9e-4 without), a tenth of one step (lr r = 0.07 on a (13, 1))
            tol64=6e-3,
            matrices=True,
            group_kernel=False,
        ),
        Case(
            "muon",
            muon_adamw_rule,
            (
                {},
                dict(l1=1e-3, l2=1e-2),
                dict(
                    nesterov=False,
                    adamw_betas=(0.8, 0.99),
                    adjust_lr_fn="original",
                    weight_decay=0.0,
                ),  # fmt: skip
            ),
            # A vector goes to the AdamW half (its Muon half is muon_torch's case).
            (Converge(0.1, 500, 5e-3, dict(weight_decay=0.0)),),  # (observed 7e-4)
            (Converge(0.01, 3000, 2e-3, dict(weight_decay=0.0)),),  # (observed 1.9e-4)
            {"adjust_lr_fn": "match_rms_adamw", "adamw_betas": (0.9, 0.95), "weight_decay": 0.1},
            tol64=3e-3,
            group_kernel=False,
        ),
        _schedule_free_case(
            "schedulefree_adamw",
            (
                dict(betas=(0.8, 0.99), weight_decay=0.1, warmup_steps=5),
                dict(l1=1e-3, l2=1e-2, r=1.0, weight_lr_power=1.0),
                dict(eps=1e-6, maximize=True, warmup_steps=3),
            ),
            # The average converges at O(1/t): the quadratic's runs end near 1e-13 (y).
            Converge(0.3, 500, 1e-9),
            Converge(0.05, 2000, 0.3),  # progress along the valley (observed 0.066)
            {"betas": (0.9, 0.999), "eps": 1e-8},
        ),
        _schedule_free_case(
            "schedulefree_sgd",
            (
                dict(momentum=0.8, weight_decay=0.1, warmup_steps=5),
                dict(l1=1e-3, l2=0.05, r=0.5),
                dict(maximize=True, weight_lr_power=0.0),
            ),
            Converge(0.035, 2000, 2e-3),  # (observed 2.4e-4)
            Converge(0.002, 2000, 1.5, dict(momentum=0.5)),  # progress (observed 0.38)
            {"momentum": 0.9},
        ),
    )
}

# Every (case, option set) pair, as pytest ids "row-index".
ALL_SETS = [(c, i) for c in CASES.values() for i in range(len(c.option_sets))]


def set_id(pair: tuple[Case, int]) -> str:
    return f"{pair[0].row}-{pair[1]}"


# --- building the row's optimizer for a run ----------------------------------------------------

ALL_MODES = ("auto", "eager", "native", "torch")  # kernels: every mode an optimizer has
FLATS = (False, True)


def sets_of(case: Case, index: int | str, twin: bool = False) -> list[dict]:
    """One option set (one param group), or "groups": the first two (that the twin takes,
    with ``twin``), one group each."""
    if index != "groups":
        return [case.option_sets[index]]
    indices = case.twin_sets() if twin else range(len(case.option_sets))
    return [case.option_sets[i] for i in list(indices)[:2]]


def build(case: Case, params, sets: list[dict], *, flat=False, kernels="auto", twin=None):
    """The row's optimizer over ``params``, split round-robin into one param group per
    option set; ``twin``: a call torch's twin takes too (True: build the twin itself)."""
    shared = {"lr": case.lr}
    if len(sets) == 1:
        arg: list = params
        shared = {**shared, **sets[0]}
    else:
        groups = [dict(s) for s in sets]
        for key in case.constructor_only if twin is not None else ():
            # torch reads it from the constructor only: give both sides the same one.
            shared[key] = groups[0].get(key, shared.get(key))
            for g in groups:
                g.pop(key, None)
        arg = [dict(params=params[k :: len(sets)], **g) for k, g in enumerate(groups)]
    if twin:
        return case.twin(arg, **{**case.table_row.defaults, **shared})
    opt = case.table_row.build(arg, flat=flat, **shared)
    opt.kernels = kernels
    return opt


def variants(case: Case, sets: list[dict], modes, twin=None) -> dict:
    return {
        f"{'flat' if flat else 'per-tensor'}-{mode}": (
            lambda ps, flat=flat, mode=mode: build(
                case, ps, sets, flat=flat, kernels=mode, twin=twin
            )
        )
        for flat in FLATS
        for mode in modes
    }
