"""The reference rules of the optimizer tests: each update in float64, written from the paper
or SEED.md (plain torch ops on one tensor, never nnopt's code). ``optim_cases.CASES`` pairs
each with its table row; ``optim_case.reference_step`` wraps one in the documented order of an
update (maximize, coupled L2, decoupled decay, the rule, L1).

A rule: (theta, g, state, options, t) -> (new theta, preconditioner d). ``state`` is the
tensor's own dict, filled on its first step; t counts steps from 1.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


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


def warmed_up_lr(o: dict, t: int) -> float:
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
    lr = warmed_up_lr(o, t)
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
