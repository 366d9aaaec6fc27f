// One-pass CPU kernels for nnopt's update rules: one NNOPT_RULE each (cpu_rule.h says how).
//
// Each kernel reads every input once and writes every output once: coupled L2, decoupled
// decay, the rule and the L1 proximal step happen in registers, in the order of
// nnopt.optim.dispatch.apply. The arithmetic mirrors the order of operations of the eager
// PyTorch ops in nnopt/optim/rules/ (addcmul: a + (v * b) * c, addcdiv: a + (v * b) / c,
// lerp with torch's two forms), so float32 and float64 results agree with the eager rule to
// rounding. bfloat16 is computed in float and rounded once on store (the eager rule rounds
// after every op, so it is the less accurate of the two).
//
// Plain C ABI, no PyTorch headers: the library builds in seconds and is loaded with ctypes
// (build.py); a small thread pool (cpu_pool.h) spreads the chunks over the cores.

#include <algorithm>

#include "cpu_compact.h"
#include "cpu_rule.h"

using nnopt::at;
using nnopt::lerp;
using nnopt::put;
using nnopt::sign_of;

// Gradient descent, heavy-ball and Nesterov momentum (rules.sgd_, rules.momentum_):
// b <- mu b + g;  theta <- theta - lr b  (Nesterov: theta - lr (g + mu b));  d = 1.
NNOPT_RULE(sgd, ptr(momentum_buffer), flag(momentum_on), flag(nesterov), f64(mu)) {
  const A neg_lr = A(-a.lr), mu = A(a.mu);
  return [=](A& p, A g, int64_t i) {
    if constexpr (NNOPT_ON(momentum_on)) {
      const A b = at<T>(a.momentum_buffer, i) * mu + g;
      put<T>(a.momentum_buffer, i, b);
      p = p + neg_lr * (NNOPT_ON(nesterov) ? g + mu * b : b);
    } else {
      p = p + neg_lr * g;
    }
    return A(1);
  };
}

// AdaGrad (rules.adagrad_): G <- G + g^2;  d = sqrt(G) + eps;  theta <- theta - lr_t g / d,
// lr_t = lr / (1 + (t - 1) lr_decay) (torch's clr; L1 and decay use lr itself).
NNOPT_RULE(adagrad, ptr(sum), f64(eps), f64(lr_decay)) {
  const A neg_lr = A(-(a.lr / (1 + (a.step - 1) * a.lr_decay))), eps = A(a.eps);
  return [=](A& p, A g, int64_t i) {
    const A s = at<T>(a.sum, i) + g * g;
    put<T>(a.sum, i, s);
    const A d = std::sqrt(s) + eps;
    p = p + neg_lr * g / d;
    return d;
  };
}

// RMSProp, seed and torch forms, centered, momentum (rules.rmsprop_):
// E <- rho E + (1 - rho) g^2;  centered: gbar <- lerp(gbar, g, 1 - rho), S = E - gbar^2
// d = sqrt(S + eps) (seed) or sqrt(S) + eps (torch)
// theta <- theta - lr g / d;  momentum: b <- mu b + g / d, theta <- theta - lr b.
NNOPT_RULE(rmsprop, ptr(square_avg), ptr(grad_avg), ptr(momentum_buffer), flag(centered),
           flag(momentum_on), flag(eps_inside_sqrt), f64(rho), f64(eps), f64(mu)) {
  const A neg_lr = A(-a.lr), rho = A(a.rho), w = A(1.0 - a.rho), eps = A(a.eps), mu = A(a.mu);
  const bool low = std::abs(1.0 - a.rho) < 0.5;
  return [=](A& p, A g, int64_t i) {
    const A e = at<T>(a.square_avg, i) * rho + w * g * g;
    put<T>(a.square_avg, i, e);
    A spread = e;
    if constexpr (NNOPT_ON(centered)) {
      const A ga = lerp(at<T>(a.grad_avg, i), g, w, low);
      put<T>(a.grad_avg, i, ga);
      spread = e + A(-1) * ga * ga;
    }
    const A d = NNOPT_ON(eps_inside_sqrt) ? std::sqrt(spread + eps) : std::sqrt(spread) + eps;
    if constexpr (NNOPT_ON(momentum_on)) {
      const A b = at<T>(a.momentum_buffer, i) * mu + g / d;
      put<T>(a.momentum_buffer, i, b);
      p = p + neg_lr * b;
    } else {
      p = p + neg_lr * g / d;
    }
    return d;
  };
}

// Adam / AdamW / AMSGrad (rules.adam_), at step t:
// m <- lerp(m, g, 1 - b1);  v <- b2 v + (1 - b2) g^2  (AMSGrad: v_max <- max(v_max, v))
// d = sqrt(v) / sqrt(1 - b2^t) + eps;  theta <- theta - lr / (1 - b1^t) * m / d.
// The bias corrections as the Python side computes them: 1 - beta^t with libm's pow.
NNOPT_RULE(adam, ptr(exp_avg), ptr(exp_avg_sq), ptr(max_exp_avg_sq), flag(amsgrad), f64(beta1),
           f64(beta2), f64(eps)) {
  const A w1 = A(1.0 - a.beta1), beta2 = A(a.beta2), w2 = A(1.0 - a.beta2), eps = A(a.eps);
  const A step = A(-a.lr / (1.0 - std::pow(a.beta1, a.step)));
  const A bc2_sqrt = A(std::sqrt(1.0 - std::pow(a.beta2, a.step)));
  const bool low = std::abs(1.0 - a.beta1) < 0.5;
  return [=](A& p, A g, int64_t i) {
    const A m = lerp(at<T>(a.exp_avg, i), g, w1, low);
    put<T>(a.exp_avg, i, m);
    const A v = at<T>(a.exp_avg_sq, i) * beta2 + w2 * g * g;
    put<T>(a.exp_avg_sq, i, v);
    A second = v;
    if constexpr (NNOPT_ON(amsgrad)) {
      const A vm = at<T>(a.max_exp_avg_sq, i);
      second = (vm > v || vm != vm) ? vm : v;  // torch.maximum: NaN wins
      put<T>(a.max_exp_avg_sq, i, second);
    }
    const A d = std::sqrt(second) / bc2_sqrt + eps;
    p = p + step * m / d;
    return d;
  };
}

// Lion (rules.lion_): theta <- theta - lr sign(b1 m + (1 - b1) g);  m <- b2 m + (1 - b2) g;
// d = 1.
NNOPT_RULE(lion, ptr(exp_avg), f64(beta1), f64(beta2)) {
  const A b1 = A(a.beta1), w1 = A(1.0 - a.beta1), b2 = A(a.beta2), w2 = A(1.0 - a.beta2);
  const A neg_lr = A(-a.lr);
  return [=](A& p, A g, int64_t i) {
    const A m = at<T>(a.exp_avg, i);
    p = p + neg_lr * sign_of(m * b1 + w1 * g);
    put<T>(a.exp_avg, i, m * b2 + w2 * g);
    return A(1);
  };
}

// AdEMAMix (rules.ademamix_): m1 <- lerp(m1, g, 1 - b1);  m2 <- lerp(m2, g, 1 - b3_t);
// v <- b2 v + (1 - b2) g^2;  d = sqrt(v) / sqrt(1 - b2^t) + eps;
// theta <- theta - lr (m1 / (1 - b1^t) + alpha_t m2) / d.  alpha_t, b3_t: the paper's warmup
// over t_alpha_beta3 steps (0: none), the expressions of rules.ademamix_schedule in its order.
NNOPT_RULE(ademamix, ptr(exp_avg_fast), ptr(exp_avg_slow), ptr(exp_avg_sq), f64(beta1),
           f64(beta2), f64(beta3), f64(alpha), f64(t_alpha_beta3), f64(eps)) {
  double alpha_t = a.alpha, beta3_t = a.beta3;
  if (a.t_alpha_beta3 > 0) {
    const double span = a.t_alpha_beta3, log1 = std::log(a.beta1), log3 = std::log(a.beta3);
    const double mix = a.step / span;
    alpha_t = std::min(a.step * a.alpha / span, a.alpha);
    beta3_t = std::min(std::exp(log1 * log3 / ((1.0 - mix) * log3 + mix * log1)), a.beta3);
  }
  const A w1 = A(1.0 - a.beta1), w3 = A(1.0 - beta3_t), beta2 = A(a.beta2);
  const A w2 = A(1.0 - a.beta2), eps = A(a.eps), alpha = A(alpha_t), neg_lr = A(-a.lr);
  const A bc1 = A(1.0 - std::pow(a.beta1, a.step));
  const A bc2_sqrt = A(std::sqrt(1.0 - std::pow(a.beta2, a.step)));
  const bool low1 = std::abs(1.0 - a.beta1) < 0.5, low3 = std::abs(1.0 - beta3_t) < 0.5;
  return [=](A& p, A g, int64_t i) {
    const A m1 = lerp(at<T>(a.exp_avg_fast, i), g, w1, low1);
    put<T>(a.exp_avg_fast, i, m1);
    const A m2 = lerp(at<T>(a.exp_avg_slow, i), g, w3, low3);
    put<T>(a.exp_avg_slow, i, m2);
    const A v = at<T>(a.exp_avg_sq, i) * beta2 + w2 * g * g;
    put<T>(a.exp_avg_sq, i, v);
    const A d = std::sqrt(v) / bc2_sqrt + eps;
    p = p + neg_lr * ((m1 / bc1 + alpha * m2) / d);
    return d;
  };
}

// NAdam (rules.nadam_), at step t: mu_t = b1 (1 - 0.5 * 0.96^(t psi)), P <- P mu_t (the
// tensor's float32 mu_product, rounded as torch's float32 op rounds it, once per tensor)
// m <- lerp(m, g, 1 - b1);  v <- b2 v + (1 - b2) g^2;  d = sqrt(v / (1 - b2^t)) + eps
// theta <- theta - lr (1 - mu_t) / (1 - P) g / d - lr mu_{t+1} / (1 - P mu_{t+1}) m / d.
NNOPT_RULE(nadam, ptr(exp_avg), ptr(exp_avg_sq), scalar(mu_product), f64(beta1), f64(beta2),
           f64(eps), f64(momentum_decay)) {
  const double mu = a.beta1 * (1.0 - 0.5 * std::pow(0.96, a.step * a.momentum_decay));
  const double mu_next = a.beta1 * (1.0 - 0.5 * std::pow(0.96, (a.step + 1) * a.momentum_decay));
  float* const held = static_cast<float*>(a.mu_product);
  const double product = *held = static_cast<float>(mu) * *held;
  const A grad_step = A(-a.lr * (1.0 - mu) / (1.0 - product));
  const A avg_step = A(-a.lr * mu_next / (1.0 - product * mu_next));
  const A w1 = A(1.0 - a.beta1), beta2 = A(a.beta2), w2 = A(1.0 - a.beta2), eps = A(a.eps);
  const A bc2 = A(1.0 - std::pow(a.beta2, a.step));
  const bool low = std::abs(1.0 - a.beta1) < 0.5;
  return [=](A& p, A g, int64_t i) {
    const A m = lerp(at<T>(a.exp_avg, i), g, w1, low);
    put<T>(a.exp_avg, i, m);
    const A v = at<T>(a.exp_avg_sq, i) * beta2 + w2 * g * g;
    put<T>(a.exp_avg_sq, i, v);
    const A d = std::sqrt(v / bc2) + eps;
    p = p + grad_step * g / d;
    p = p + avg_step * m / d;
    return d;
  };
}

// RAdam (rules.radam_), at step t: m <- lerp(m, g, 1 - b1);  v <- b2 v + (1 - b2) g^2
// rectified (rho_t > 5): d = (sqrt(v) + eps) / (sqrt(1 - b2^t) r_t), theta <- theta -
// lr / (1 - b1^t) m / d;  otherwise theta <- theta - lr / (1 - b1^t) m, d = 1.
// r_t and rho_t depend on t alone: computed once per tensor, as rules.rectification.
NNOPT_RULE(radam, ptr(exp_avg), ptr(exp_avg_sq), f64(beta1), f64(beta2), f64(eps)) {
  const double rho_inf = 2 / (1 - a.beta2) - 1;
  const double b2t = std::pow(a.beta2, a.step);
  const double rho_t = rho_inf - 2 * a.step * b2t / (1 - b2t);
  const bool rectified = rho_t > 5.0;
  const double rect =
      rectified ? std::sqrt((rho_t - 4) * (rho_t - 2) * rho_inf /
                            ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                : 1.0;
  const A step = A(-a.lr / (1.0 - std::pow(a.beta1, a.step)));
  const A scale = A(std::sqrt(1.0 - b2t) * rect);
  const A w1 = A(1.0 - a.beta1), beta2 = A(a.beta2), w2 = A(1.0 - a.beta2), eps = A(a.eps);
  const bool low = std::abs(1.0 - a.beta1) < 0.5;
  return [=](A& p, A g, int64_t i) {
    const A m = lerp(at<T>(a.exp_avg, i), g, w1, low);
    put<T>(a.exp_avg, i, m);
    const A v = at<T>(a.exp_avg_sq, i) * beta2 + w2 * g * g;
    put<T>(a.exp_avg_sq, i, v);
    if (!rectified) {
      p = p + step * m;
      return A(1);
    }
    const A d = (std::sqrt(v) + eps) / scale;
    p = p + step * m / d;
    return d;
  };
}

// Schedule-Free SGD (rules.schedule_free_sgd_), at the averaging weight c = ckp1:
// u = g + wd y (wd: the optimizer's weight_decay, the block's y_decay);
// y <- lerp(y, z, c) + lr (beta (1 - c) - 1) u;  z <- z - lr u;  d = 1.
NNOPT_RULE(schedule_free_sgd, ptr(z), f64(momentum), f64(y_decay), f64(ckp1)) {
  const A wd = A(a.y_decay), c = A(a.ckp1), neg_lr = A(-a.lr);
  const A y_step = A(a.lr * (a.momentum * (1.0 - a.ckp1) - 1.0));
  const bool low = std::abs(a.ckp1) < 0.5;
  return [=](A& p, A g, int64_t i) {
    // Unconditional (wd = 0 adds 0; the eager rule skips the add): a runtime branch here
    // kept the loop from vectorizing, 4-8x slower on large tensors.
    const A u = g + wd * p;
    const A z = at<T>(a.z, i);
    p = lerp(p, z, c, low) + y_step * u;
    put<T>(a.z, i, z + neg_lr * u);
    return A(1);
  };
}

// Schedule-Free AdamW (rules.schedule_free_adamw_): v <- b2 v + (1 - b2) g^2;
// d = sqrt(v / (1 - b2^t)) + eps;  u = g / d + wd y;  y and z as schedule_free_sgd with b1.
NNOPT_RULE(schedule_free_adamw, ptr(z), ptr(exp_avg_sq), f64(beta1), f64(beta2), f64(eps),
           f64(y_decay), f64(ckp1), f64(bias_correction2)) {
  const A beta2 = A(a.beta2), w2 = A(1.0 - a.beta2), eps = A(a.eps);
  const A bc2 = A(a.bias_correction2), wd = A(a.y_decay), c = A(a.ckp1), neg_lr = A(-a.lr);
  const A y_step = A(a.lr * (a.beta1 * (1.0 - a.ckp1) - 1.0));
  const bool low = std::abs(a.ckp1) < 0.5;
  return [=](A& p, A g, int64_t i) {
    const A v = at<T>(a.exp_avg_sq, i) * beta2 + w2 * g * g;
    put<T>(a.exp_avg_sq, i, v);
    const A d = std::sqrt(v / bc2) + eps;
    const A u = g / d + wd * p;  // (as schedule_free_sgd's u)
    const A z = at<T>(a.z, i);
    p = lerp(p, z, c, low) + y_step * u;
    put<T>(a.z, i, z + neg_lr * u);
    return d;
  };
}

#if NNOPT_PART != 2
// The rules this library holds, comma-separated (each NNOPT_RULE registered its name).
extern "C" const char* nnopt_rules() { return nnopt::rule_names().c_str(); }

// sizeof(nnopt::Compact), which kernels/compact.py holds its mirror to.
extern "C" size_t nnopt_compact_size() { return sizeof(nnopt::Compact); }
#endif
