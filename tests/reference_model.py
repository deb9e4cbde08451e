"""A plain NumPy reference of one quantum spiking neuron (DESIGN §1), for tests.

Written straight from the design text, independent of ``qsn``'s code (no JAX, no ``qsn`` import):
complex 2-vectors and 2x2 matrices, a 4x4 Liouvillian in column-stacking convention, SciPy's
``expm``, Python ints for the refractory bookkeeping (the step of the last spike is remembered,
not a counter). Slow and obvious on purpose.

Conventions: basis ``(|0>, |1>)``, ``sz = diag(1, -1)`` (so ``sz|0> = +|0>``), hbar = 1, mV and ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.linalg

__all__ = [
    "SX",
    "SY",
    "SZ",
    "KET0",
    "RefParams",
    "refractory_steps",
    "membrane",
    "drive",
    "hamiltonian",
    "unitary",
    "collapse_operators",
    "liouvillian",
    "run_reference",
]

SX = np.array([[0, 1], [1, 0]], complex)
SY = np.array([[0, -1j], [1j, 0]], complex)
SZ = np.array([[1, 0], [0, -1]], complex)
KET0 = np.array([1, 0], complex)


@dataclass(frozen=True)
class RefParams:
    """DESIGN §1 parameters of one neuron (plain floats; the design's defaults)."""

    v_rest: float = -70.0
    v_th: float = -55.0
    tau_m: float = 20.0
    r_m: float = 1.0
    t_ref: float = 2.0
    delta: float = 0.1
    t2: float = math.inf
    t1: float = math.inf
    jump_rate: float = 0.0
    dt: float = 0.1


def refractory_steps(t_ref: float, dt: float) -> int:
    """``n_ref = ceil(t_ref/dt)`` with the ratio rounded to 1e-9 first."""
    return int(math.ceil(round(t_ref / dt, 9)))


def membrane(v: float, current: float, p: RefParams) -> float:
    """Exact LIF update over ``dt`` for constant ``current`` (``r_m * I`` in mV)."""
    e = math.exp(-p.dt / p.tau_m)
    return p.v_rest + (v - p.v_rest) * e + p.r_m * current * (1.0 - e)


def drive(v: float, p: RefParams) -> float:
    """``a = (V - v_rest)/(v_th - v_rest)``."""
    return (v - p.v_rest) / (p.v_th - p.v_rest)


def hamiltonian(a: float, delta: float) -> np.ndarray:
    """``H = a sz + delta sx``."""
    return a * SZ + delta * SX


def unitary(a: float, delta: float, dt: float) -> np.ndarray:
    """``U = cos(w dt) 1 - i sin(w dt)/w H`` with ``w = sqrt(a^2 + delta^2)``; ``sin(w dt)/w -> dt`` at ``w = 0``."""
    w = math.hypot(a, delta)
    sin_over_w = dt * np.sinc(w * dt / np.pi)  # np.sinc(x) = sin(pi x)/(pi x), = 1 at 0
    return math.cos(w * dt) * np.eye(2, dtype=complex) - 1j * sin_over_w * hamiltonian(a, delta)


def collapse_operators(p: RefParams) -> list[np.ndarray]:
    """``[sqrt(1/t1)|0><1|, sqrt(gphi/2) sz]`` (terms with zero rate left out), ``gphi = 1/t2 - 1/(2 t1)``."""
    g1 = 0.0 if math.isinf(p.t1) else 1.0 / p.t1
    g2 = 0.0 if math.isinf(p.t2) else 1.0 / p.t2
    gphi = g2 - g1 / 2.0
    ops = []
    if g1 > 0:
        ops.append(math.sqrt(g1) * np.array([[0, 1], [0, 0]], complex))
    if gphi > 0:
        ops.append(math.sqrt(gphi / 2.0) * SZ)
    return ops


def liouvillian(h: np.ndarray, c_ops: list[np.ndarray]) -> np.ndarray:
    """4x4 superoperator of ``drho/dt = -i[H, rho] + sum_k D[L_k] rho`` acting on ``rho.reshape(-1, order="F")``.

    Column stacking: ``vec(A X B) = (B^T kron A) vec(X)``.
    """
    eye = np.eye(2)
    out = -1j * (np.kron(eye, h) - np.kron(h.T, eye))
    for c in c_ops:
        cdc = c.conj().T @ c
        out = out + np.kron(c.conj(), c) - 0.5 * np.kron(eye, cdc) - 0.5 * np.kron(cdc.T, eye)
    return out


def _mixed_propagator_numpy(p: RefParams) -> Callable[[float], np.ndarray]:
    """``a -> expm(L(a) dt)``, remembered per value of ``a`` (runs revisit the same ``V`` after each reset)."""
    c_ops = collapse_operators(p)
    cache: dict[float, np.ndarray] = {}

    def propagator(a: float) -> np.ndarray:
        if a not in cache:
            cache[a] = scipy.linalg.expm(liouvillian(hamiltonian(a, p.delta), c_ops) * p.dt)
        return cache[a]

    return propagator


def run_reference(
    p: RefParams,
    currents: np.ndarray,
    *,
    mode: str = "pure",
    v0: float | None = None,
    psi0: np.ndarray | None = None,
    rho0: np.ndarray | None = None,
    propagator: Callable[[float], np.ndarray] | None = None,
    jump_uniforms: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Run one neuron for ``T = len(currents)`` steps of DESIGN §1; return what it was after each step.

    Args:
        p: parameters.
        currents: ``(T,)`` input ``I`` of each step (``r_m * I`` in mV).
        mode: ``"pure"`` (state vector; needs ``t1 = t2 = inf``, the stochastic unravelling is not
            modelled here) or ``"mixed"`` (density matrix, exact Lindblad propagator).
        v0: initial potential (default ``v_rest``); the neuron starts non-refractory.
        psi0, rho0: initial qubit state (default |0>).
        propagator: mixed mode, ``a -> (4, 4)`` propagator over ``dt`` on column-stacked ``rho``
            (default: SciPy ``expm`` of :func:`liouvillian`).
        jump_uniforms: ``(T,)`` uniform draws in [0, 1) deciding quantum jumps (needed when ``jump_rate > 0``).

    Returns:
        ``{"v": (T,), "spikes": (T,) bool, "rho": (T, 2, 2) complex, "a": (T,)}``, after each step
        (``a`` is the drive the qubit saw in that step).
    """
    if mode not in ("pure", "mixed"):
        raise ValueError(f"mode must be 'pure' or 'mixed', got {mode!r}")
    if mode == "pure" and not (math.isinf(p.t1) and math.isinf(p.t2)):
        raise ValueError("the reference's pure mode is deterministic: it needs t1 = t2 = inf")
    if p.jump_rate > 0 and jump_uniforms is None:
        raise ValueError("jump_rate > 0 needs jump_uniforms")
    currents = np.asarray(currents, np.float64)
    steps = currents.shape[0]
    n_ref = refractory_steps(p.t_ref, p.dt)
    if mode == "mixed" and propagator is None:
        propagator = _mixed_propagator_numpy(p)

    v = p.v_rest if v0 is None else float(v0)
    psi = KET0.copy() if psi0 is None else np.asarray(psi0, complex).copy()
    rho = np.outer(psi, psi.conj()) if rho0 is None else np.asarray(rho0, complex).copy()
    last_spike = None  # step index of the most recent spike
    out_v = np.empty(steps)
    out_a = np.empty(steps)
    out_spk = np.zeros(steps, bool)
    out_rho = np.empty((steps, 2, 2), complex)
    keep = math.exp(-p.jump_rate * p.dt)
    for k in range(steps):
        # 1. refractory: a spike at step j makes steps j+1 .. j+n_ref-1 refractory
        refractory = last_spike is not None and 1 <= k - last_spike <= n_ref - 1
        # 2. membrane
        v = p.v_rest if refractory else membrane(v, currents[k], p)
        # 3. qubit, with the V after step 2
        a = drive(v, p)
        if mode == "pure":
            psi = unitary(a, p.delta, p.dt) @ psi
        else:
            rho = (propagator(a) @ rho.reshape(-1, order="F")).reshape(2, 2, order="F")
        # 4. quantum jump
        spike = False
        if p.jump_rate > 0 and not refractory:
            p1 = abs(psi[1]) ** 2 if mode == "pure" else rho[1, 1].real
            if jump_uniforms[k] < p1 * (1.0 - keep):
                spike = True
            else:
                k0 = np.diag([1.0, math.sqrt(keep)]).astype(complex)
                if mode == "pure":
                    psi = k0 @ psi
                    psi = psi / np.linalg.norm(psi)
                else:
                    rho = k0 @ rho @ k0.conj().T
                    rho = rho / np.trace(rho).real
        # 5. threshold
        if not refractory and v >= p.v_th:
            spike = True
        # 6. spike: reset
        if spike:
            v = p.v_rest
            psi = KET0.copy()
            rho = np.outer(KET0, KET0.conj())
            last_spike = k
        out_v[k] = v
        out_a[k] = a
        out_spk[k] = spike
        out_rho[k] = np.outer(psi, psi.conj()) if mode == "pure" else rho
    return {"v": out_v, "spikes": out_spk, "rho": out_rho, "a": out_a}
