"""Baselines for bench_population.py, written independently of qsn's code (NumPy/SciPy only).

* ``sequential_loop``: one neuron at a time, one ``scipy.linalg.expm`` per neuron per step — how a
  straightforward per-neuron implementation (the seed report's) advances the qubit.
* ``vectorized_numpy``: the whole population as NumPy arrays, closed-form unitary (pure) or batched
  ``scipy.linalg.expm`` of the 4x4 Bloch generator (mixed).

Both implement DESIGN §1 with constant per-neuron current, no jumps, no stochastic parts.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import expm

SX = np.array([[0, 1], [1, 0]], complex)
SZ = np.array([[1, 0], [0, -1]], complex)


class Model:
    """Default DESIGN §1 parameters."""

    v_rest, v_th, tau_m, r_m, t_ref, dt = -70.0, -55.0, 20.0, 1.0, 2.0, 0.1

    def __init__(self, delta: float, t2: float = math.inf, t1: float = math.inf):
        self.delta, self.t2, self.t1 = delta, t2, t1
        self.decay = math.exp(-self.dt / self.tau_m)
        self.n_ref = math.ceil(round(self.t_ref / self.dt, 9))
        self.g1 = 0.0 if math.isinf(t1) else 1 / t1
        self.g2 = 0.0 if math.isinf(t2) else 1 / t2


def bloch_generator(a: np.ndarray, m: Model) -> np.ndarray:
    """``(..., 4, 4)`` affine generator of the Bloch vector (x, y, z, 1) for drives ``a``."""
    a = np.asarray(a, float)
    gen = np.zeros(a.shape + (4, 4))
    gen[..., 0, 0] = gen[..., 1, 1] = -m.g2
    gen[..., 2, 2] = -m.g1
    gen[..., 0, 1], gen[..., 1, 0] = -2 * a, 2 * a
    gen[..., 1, 2], gen[..., 2, 1] = -2 * m.delta, 2 * m.delta
    gen[..., 2, 3] = m.g1
    return gen


def sequential_loop(m: Model, current: np.ndarray, steps: int, mixed: bool) -> int:
    """Advance each neuron in turn with ``expm`` per step; returns the total spike count."""
    spikes = 0
    for i_n in current:
        v, ref = m.v_rest, 0
        psi = np.array([1, 0], complex)
        r = np.array([0.0, 0.0, 1.0, 1.0])
        for _ in range(steps):
            is_ref = ref > 0
            ref = ref - 1 if is_ref else ref
            v = m.v_rest if is_ref else m.v_rest + (v - m.v_rest) * m.decay + m.r_m * i_n * (1 - m.decay)
            a = (v - m.v_rest) / (m.v_th - m.v_rest)
            if mixed:
                r = expm(bloch_generator(a, m) * m.dt) @ r
            else:
                psi = expm(-1j * (a * SZ + m.delta * SX) * m.dt) @ psi
            if not is_ref and v >= m.v_th:
                spikes += 1
                v, ref = m.v_rest, max(m.n_ref - 1, 0)
                psi = np.array([1, 0], complex)
                r = np.array([0.0, 0.0, 1.0, 1.0])
    return spikes


def vectorized_numpy(m: Model, current: np.ndarray, steps: int, mixed: bool, dtype=np.float32) -> int:
    """Advance the whole population with NumPy array operations; returns the total spike count."""
    n = current.shape[0]
    current = current.astype(dtype)
    v = np.full(n, m.v_rest, dtype)
    ref = np.zeros(n, np.int32)
    psi = np.zeros((2, n), np.complex64 if dtype == np.float32 else np.complex128)
    psi[0] = 1
    r = np.zeros((n, 4))
    r[:, 2:] = 1
    spikes = 0
    for _ in range(steps):
        is_ref = ref > 0
        ref = np.where(is_ref, ref - 1, ref)
        v = np.where(is_ref, m.v_rest, m.v_rest + (v - m.v_rest) * m.decay + m.r_m * current * (1 - m.decay)).astype(dtype)
        a = (v - m.v_rest) / (m.v_th - m.v_rest)
        if mixed:
            r = np.einsum("nij,nj->ni", expm(bloch_generator(a, m) * m.dt), r)
        else:
            w = np.sqrt(a * a + m.delta**2)
            c, s = np.cos(w * m.dt), np.sin(w * m.dt) / np.where(w > 0, w, 1)
            h0, h1 = a * psi[0] + m.delta * psi[1], m.delta * psi[0] - a * psi[1]
            psi = np.stack([c * psi[0] - 1j * s * h0, c * psi[1] - 1j * s * h1])
        spk = ~is_ref & (v >= m.v_th)
        spikes += int(spk.sum())
        v = np.where(spk, m.v_rest, v)
        ref = np.where(spk, max(m.n_ref - 1, 0), ref)
        psi[:, spk] = [[1], [0]]
        r[spk] = (0, 0, 1, 1)
    return spikes
