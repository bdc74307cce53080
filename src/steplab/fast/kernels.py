"""Fused step kernels: each optimizer's loop body as one pass over memory.

The readable ``_update`` of each optimizer (``steplab/optim/*.py``) is the reference and
the documentation: NumPy evaluates it one array operation at a time, so a step of Adam
reads and writes every array several times and allocates temporaries. The kernels here
compute the same lines, in the same order and the same floating-point types (where
float64 would be compute-bound, Adam and RAdam multiply by 1/(1 − ρᵗ) where _update
divides, and AdaDelta takes one square root of a ratio: an ulp or two apart), one
coordinate at a time: each array is read once and written once per step, which is as
fast as the memory system allows. Tests check them against ``_update``.

Every kernel takes flat, contiguous arrays and scalars. Scalars arrive already in the
type NumPy would use for them in ``_update``: a Python float there is "weak" and
computes in theta's dtype, so it arrives as ``dtype.type(value)``; a NumPy float64
scalar there (e.g. ``np.sqrt`` of a Python float) is "strong" and arrives as
``np.float64``, so numba promotes exactly where NumPy does. The ``prepare_*``
functions do that translation and advance ``state.t``.
"""

from __future__ import annotations

import numpy as np

from steplab.fast._numba import lazy_jit, prange
from steplab.optim.base import bias_correction

# --------------------------------------------------------------------------------------
# Gradient descent and momentum
# --------------------------------------------------------------------------------------


@lazy_jit(parallel=True)
def sgd_kernel(theta, g, neg_lr, l2, has_l2):
    for i in prange(theta.size):
        gi = g[i] + l2 * theta[i] if has_l2 else g[i]  # L2 penalty
        theta[i] += neg_lr * gi  # θ ← θ − α·ĝ


@lazy_jit(parallel=True)
def momentum_kernel(theta, g, b, neg_lr, rho, l2, has_l2, nesterov):
    for i in prange(theta.size):
        gi = g[i] + l2 * theta[i] if has_l2 else g[i]
        bi = rho * b[i] + gi  # velocity
        b[i] = bi
        if nesterov:
            theta[i] += neg_lr * (gi + rho * bi)  # look-ahead direction
        else:
            theta[i] += neg_lr * bi


# --------------------------------------------------------------------------------------
# AdaGrad, RMSProp, AdaDelta
# --------------------------------------------------------------------------------------


@lazy_jit(parallel=True)
def adagrad_kernel(theta, g, r, neg_lr, eps, eps_root, l2, has_l2):
    for i in prange(theta.size):
        gi = g[i] + l2 * theta[i] if has_l2 else g[i]
        ri = r[i] + gi * gi  # accumulate squared gradient
        r[i] = ri
        theta[i] += neg_lr / (eps + np.sqrt(ri + eps_root)) * gi  # Δθ = −α/(β+√r)⊙ĝ


@lazy_jit(parallel=True)
def rmsprop_kernel(theta, g, r, m, b, neg_lr, rho, one_minus_rho, eps, eps_root, mu, l2,
                   has_l2, centered, has_momentum):  # fmt: skip
    for i in prange(theta.size):
        gi = g[i] + l2 * theta[i] if has_l2 else g[i]
        ri = rho * r[i] + one_minus_rho * gi * gi  # accumulate squared gradient
        r[i] = ri
        if not centered and not has_momentum:  # the seed's algorithm
            theta[i] += neg_lr / (eps + np.sqrt(ri + eps_root)) * gi
            continue
        if centered:  # divide by the root of the variance r − m²
            mi = rho * m[i] + one_minus_rho * gi
            m[i] = mi
            ri = ri - mi * mi
        scaled = gi / (eps + np.sqrt(ri + eps_root))
        if has_momentum:
            scaled = mu * b[i] + scaled
            b[i] = scaled
        theta[i] += neg_lr * scaled


@lazy_jit(parallel=True)
def adadelta_kernel(theta, g, r, u, neg_lr, rho, one_minus_rho, eps_root, l2, has_l2):
    for i in prange(theta.size):
        gi = g[i] + l2 * theta[i] if has_l2 else g[i]
        ri = rho * r[i] + one_minus_rho * gi * gi  # squared gradients
        r[i] = ri
        # √(u+ε)/√(r+ε) as one root √((u+ε)/(r+ε)): an ulp or two from _update, and one
        # square root less per coordinate (float64 would otherwise be compute-bound)
        delta = np.sqrt((u[i] + eps_root) / (ri + eps_root)) * gi
        u[i] = rho * u[i] + one_minus_rho * delta * delta  # squared updates
        theta[i] += neg_lr * delta


# --------------------------------------------------------------------------------------
# Adam and its relatives
# --------------------------------------------------------------------------------------


@lazy_jit(parallel=True)
def adam_kernel(theta, g, s, r, r_max, neg_lr, rho1, rho2, one_minus_rho1, one_minus_rho2,
                inv_bc1, inv_bc2, eps, eps_root, l2, has_l2, decay, has_decay,
                amsgrad):  # fmt: skip
    for i in prange(theta.size):
        gi = g[i] + l2 * theta[i] if has_l2 else g[i]  # Adam: L2 in the gradient
        if has_decay:
            theta[i] *= decay  # AdamW: decoupled weight decay
        si = rho1 * s[i] + one_minus_rho1 * gi  # biased first moment
        ri = rho2 * r[i] + one_minus_rho2 * gi * gi  # biased second moment
        s[i] = si
        r[i] = ri
        if amsgrad:
            ri = np.maximum(r_max[i], ri)  # AMSGrad: r never shrinks
            r_max[i] = ri
        # Correct bias in both moments. _update divides by 1 − ρᵗ; multiplying by its
        # reciprocal differs by at most an ulp but spares two divisions, which in float64
        # would make the kernel compute-bound rather than memory-bound.
        s_hat = si * inv_bc1
        r_hat = ri * inv_bc2
        theta[i] += neg_lr * s_hat / (eps + np.sqrt(r_hat + eps_root))  # apply update


@lazy_jit(parallel=True)
def adamax_kernel(theta, g, s, u, neg_step, rho1, rho2, one_minus_rho1, eps, eps_max, l2,
                  has_l2):  # fmt: skip
    for i in prange(theta.size):
        gi = g[i] + l2 * theta[i] if has_l2 else g[i]
        si = rho1 * s[i] + one_minus_rho1 * gi  # biased first moment
        ui = np.maximum(rho2 * u[i], np.abs(gi) + eps_max)  # infinity norm
        s[i] = si
        u[i] = ui
        theta[i] += neg_step * si / (ui + eps)


@lazy_jit(parallel=True)
def nadam_kernel(theta, g, s, r, neg_lr, rho1, rho2, one_minus_rho1, one_minus_rho2, bc2,
                 eps, gradient_part, momentum_part, l2, has_l2):  # fmt: skip
    for i in prange(theta.size):
        gi = g[i] + l2 * theta[i] if has_l2 else g[i]
        si = rho1 * s[i] + one_minus_rho1 * gi  # biased first moment
        ri = rho2 * r[i] + one_minus_rho2 * gi * gi  # biased second moment
        s[i] = si
        r[i] = ri
        denominator = np.sqrt(ri / bc2) + eps
        theta[i] += neg_lr * (gradient_part * gi + momentum_part * si) / denominator


@lazy_jit(parallel=True)
def radam_kernel(theta, g, s, r, neg_lr, rho1, rho2, one_minus_rho1, one_minus_rho2, inv_bc1,
                 rectified, rectification, eps, eps_hat, sqrt_correction, correction, one,
                 l2, has_l2):  # fmt: skip
    for i in prange(theta.size):
        gi = g[i] + l2 * theta[i] if has_l2 else g[i]
        si = rho1 * s[i] + one_minus_rho1 * gi  # biased first moment
        ri = rho2 * r[i] + one_minus_rho2 * gi * gi  # biased second moment
        s[i] = si
        r[i] = ri
        s_hat = si * inv_bc1  # × 1/(1−ρ₁ᵗ), as Adam's kernel
        if not rectified:  # r̂ not yet reliable: a momentum step
            theta[i] += neg_lr * s_hat
        elif eps_hat:
            theta[i] += neg_lr * s_hat * (rectification * (sqrt_correction / (np.sqrt(ri) + eps)))
        else:
            theta[i] += neg_lr * s_hat * (rectification * (one / (np.sqrt(ri / correction) + eps)))


@lazy_jit(parallel=True)
def lion_kernel(theta, g, m, neg_lr, rho1, rho2, one_minus_rho1, one_minus_rho2, decay,
                has_decay):  # fmt: skip
    for i in prange(theta.size):
        gi = g[i]
        c = rho1 * m[i] + one_minus_rho1 * gi  # interpolate momentum and gradient
        if has_decay:
            theta[i] *= decay  # decoupled weight decay
        theta[i] += neg_lr * np.sign(c)  # a step of ±α in every coordinate
        m[i] = rho2 * m[i] + one_minus_rho2 * gi  # momentum tracks ĝ


@lazy_jit(parallel=True)
def all_finite(g):
    """Whether no element of ``g`` is NaN or ±inf (one read, no temporary array)."""
    bad = 0
    for i in prange(g.size):
        bad += not np.isfinite(g[i])
    return bad == 0


# --------------------------------------------------------------------------------------
# From optimizer + state to kernel arguments
# --------------------------------------------------------------------------------------
# Each ``prepare_<name>(opt, hp, state, w)`` advances ``state.t``, computes the per-step
# scalars exactly as ``_update`` does (in Python floats), and returns
# ``(kernel, arrays, scalars)``. ``w`` casts a weak Python float to theta's dtype.


def _l2(opt, hp, w):
    """The L2 penalty (weight_decay added to the gradient) unless the class decouples it."""
    on = hp.weight_decay is not None and not opt.DECOUPLED_WEIGHT_DECAY
    return w(hp.weight_decay if on else 0.0), on


def _decay(hp, w):
    """Decoupled weight decay's factor 1 − α·λ (AdamW, Lion)."""
    on = hp.weight_decay is not None
    return w(1 - hp.lr * hp.weight_decay if on else 1.0), on


def prepare_sgd(opt, hp, state, w):
    state.t += 1
    return sgd_kernel, (), (w(-hp.lr), *_l2(opt, hp, w))


def prepare_momentum(opt, hp, state, w):
    state.t += 1
    nesterov = opt.name == "nesterov"
    return momentum_kernel, (state.b,), (w(-hp.lr), w(hp.rho), *_l2(opt, hp, w), nesterov)


def prepare_adagrad(opt, hp, state, w):
    state.t += 1
    scalars = (w(-hp.lr), w(hp.eps), w(hp.eps_root), *_l2(opt, hp, w))
    return adagrad_kernel, (state.r,), scalars


def prepare_rmsprop(opt, hp, state, w):
    state.t += 1
    m = state.m if opt.centered else state.r  # unused placeholders when switched off
    b = state.b if hp.momentum is not None else state.r
    mu = hp.momentum if hp.momentum is not None else 0.0
    scalars = (w(-hp.lr), w(hp.rho), w(1 - hp.rho), w(hp.eps), w(hp.eps_root), w(mu),
               *_l2(opt, hp, w), opt.centered, hp.momentum is not None)  # fmt: skip
    return rmsprop_kernel, (state.r, m, b), scalars


def prepare_adadelta(opt, hp, state, w):
    state.t += 1
    scalars = (w(-hp.lr), w(hp.rho), w(1 - hp.rho), w(hp.eps_root), *_l2(opt, hp, w))
    return adadelta_kernel, (state.r, state.u), scalars


def prepare_adam(opt, hp, state, w):
    state.t += 1
    t = state.t
    if opt.bias_correction:
        bc1, bc2 = bias_correction(hp.rho1, t), bias_correction(hp.rho2, t)
    else:
        bc1 = bc2 = 1.0  # multiplying by 1 changes nothing, bit for bit
    # ε̂ = eps/√(1−ρ₂ᵗ) is a NumPy float64 scalar in _update: it promotes, so pass float64.
    eps = np.float64(hp.eps / np.sqrt(bias_correction(hp.rho2, t))) if opt.eps_hat else w(hp.eps)
    r_max = state.r_max if opt.amsgrad else state.r
    decay, has_decay = _decay(hp, w) if opt.DECOUPLED_WEIGHT_DECAY else (w(1.0), False)
    scalars = (w(-hp.lr), w(hp.rho1), w(hp.rho2), w(1 - hp.rho1), w(1 - hp.rho2), w(1 / bc1),
               w(1 / bc2), eps, w(hp.eps_root), *_l2(opt, hp, w), decay, has_decay,
               opt.amsgrad)  # fmt: skip
    return adam_kernel, (state.s, state.r, r_max), scalars


def prepare_adamax(opt, hp, state, w):
    state.t += 1
    step_size = hp.lr / bias_correction(hp.rho1, state.t)
    scalars = (w(-step_size), w(hp.rho1), w(hp.rho2), w(1 - hp.rho1), w(hp.eps),
               w(hp.eps_max), *_l2(opt, hp, w))  # fmt: skip
    return adamax_kernel, (state.s, state.u), scalars


def prepare_nadam(opt, hp, state, w):
    if isinstance(state.mu_product, np.ndarray):
        return None  # one running product per configuration: the readable path
    state.t += 1
    t = state.t
    mu, mu_next = opt._mu(hp, t), opt._mu(hp, t + 1)
    state.mu_product = state.mu_product * mu
    gradient_part = (1 - mu) / (1 - state.mu_product)
    momentum_part = mu_next / (1 - state.mu_product * mu_next)
    scalars = (w(-hp.lr), w(hp.rho1), w(hp.rho2), w(1 - hp.rho1), w(1 - hp.rho2),
               w(bias_correction(hp.rho2, t)), w(hp.eps), w(gradient_part),
               w(momentum_part), *_l2(opt, hp, w))  # fmt: skip
    return nadam_kernel, (state.s, state.r), scalars


def prepare_radam(opt, hp, state, w):
    state.t += 1
    t = state.t
    rho_inf = 2 / (1 - hp.rho2) - 1
    rho_t = rho_inf - 2 * t * hp.rho2**t / bias_correction(hp.rho2, t)
    ratio = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
    correction = bias_correction(hp.rho2, t)
    # In _update these are NumPy float64 scalars (np.sqrt of Python floats): they promote.
    rectification = np.sqrt(np.maximum(ratio, 0))
    sqrt_correction = np.sqrt(correction)
    scalars = (w(-hp.lr), w(hp.rho1), w(hp.rho2), w(1 - hp.rho1), w(1 - hp.rho2),
               w(1 / bias_correction(hp.rho1, t)), bool(rho_t > 5), rectification, w(hp.eps),
               opt.eps_hat, sqrt_correction, w(correction), w(1.0),
               *_l2(opt, hp, w))  # fmt: skip
    return radam_kernel, (state.s, state.r), scalars


def prepare_lion(opt, hp, state, w):
    state.t += 1
    scalars = (w(-hp.lr), w(hp.rho1), w(hp.rho2), w(1 - hp.rho1), w(1 - hp.rho2),
               *_decay(hp, w))  # fmt: skip
    return lion_kernel, (state.m,), scalars


#: optimizer name -> how to call its kernel
PREPARE = {
    "sgd": prepare_sgd,
    "momentum": prepare_momentum,
    "nesterov": prepare_momentum,
    "adagrad": prepare_adagrad,
    "rmsprop": prepare_rmsprop,
    "adadelta": prepare_adadelta,
    "adam": prepare_adam,
    "adamw": prepare_adam,
    "adamax": prepare_adamax,
    "nadam": prepare_nadam,
    "radam": prepare_radam,
    "lion": prepare_lion,
}
