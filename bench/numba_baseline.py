"""The population step as a Numba user who cares about speed would write it: the baseline of
bench/bench_native.py.

Blocks of 512 neurons over ``numba.prange`` (one thread per block at a time), the time loop inside the
block, and the block's state copied into small arrays (2.5 KiB each: L1) that one inner loop sweeps
per step, which LLVM vectorises (``fastmath``: contraction and reassociation allowed). It computes
what ``qsn.simulate`` computes (docs/model.md): the exact membrane update, refractoriness, the qubit
step (pure: cos and sin(w dt)/w as the series valid for w dt < 0.25, and a Newton renormalisation on
every 4th step, as the native kernel does; mixed: the Taylor series of the Bloch propagator with the
plan of :mod:`qsn.lindblad`, clamped to the ball), threshold and reset. Constants come from
:class:`qsn.stepper.Stepper`, so both sides run one model; spike counts are compared in the bench.

Numba is in the ``bench`` extra only: ``pip install 'qsn[bench]'``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["BLOCK", "constants", "pure_kernel", "mixed_kernel"]

BLOCK = 512


def _numba() -> Any:
    try:
        import numba
    except ImportError as err:  # pragma: no cover - the bench extra installs it
        raise ImportError("the Numba baseline needs numba: pip install 'qsn[bench]'") from err
    return numba


def constants(stepper: Any) -> np.ndarray:
    """``(v_rest, v_th, v_reset, decay, gain, inv_range, delta, dt, ref_span, g1, g2)`` float32 from a
    :class:`qsn.stepper.Stepper` built for shared (scalar) parameters."""
    c = stepper.constants
    scalar = lambda x: float(np.asarray(x).reshape(-1)[0])  # noqa: E731
    return np.array([scalar(c.v_rest), scalar(c.v_th), scalar(c.v_reset), scalar(c.decay), scalar(c.gain),
                     scalar(c.inv_range), scalar(c.delta), scalar(c.dt), max(scalar(c.n_ref), 1.0),
                     scalar(c.g1), scalar(c.g2)], np.float32)


_KERNELS: dict = {}


def pure_kernel() -> Any:
    """``run(v, ref, re0, im0, re1, im1, current, steps, t0, consts) -> spike counts``, in place."""
    if "pure" in _KERNELS:
        return _KERNELS["pure"]
    numba = _numba()
    f32 = np.float32
    one, half, three_halves = f32(1.0), f32(0.5), f32(1.5)
    sixth, twentieth = f32(1.0 / 6.0), f32(1.0 / 20.0)
    c24, c720 = f32(1.0 / 24.0), f32(1.0 / 720.0)

    @numba.njit(parallel=True, fastmath=True, error_model="numpy", cache=True)
    def run(v, ref, re0, im0, re1, im1, current, steps, t0, consts):
        v_rest, v_th, v_reset, decay, gain, inv_range, delta, dt = consts[:8]
        span = np.int32(consts[8])
        dt2, d2 = dt * dt, delta * delta
        n = v.shape[0]
        count = np.zeros(n, np.int32)
        for b in numba.prange((n + BLOCK - 1) // BLOCK):
            lo = b * BLOCK
            hi = min(n, lo + BLOCK)
            bv, br, bi = v[lo:hi].copy(), ref[lo:hi].copy(), current[lo:hi].copy()
            x0, y0, x1, y1 = re0[lo:hi].copy(), im0[lo:hi].copy(), re1[lo:hi].copy(), im1[lo:hi].copy()
            bc = np.zeros(hi - lo, np.int32)
            for s in range(steps):
                renorm = ((t0 + s) & 3) == 3
                for k in range(hi - lo):
                    refr = br[k] > 0
                    vk = v_reset if refr else gain * bi[k] + ((bv[k] - v_rest) * decay + v_rest)
                    a = (vk - v_rest) * inv_range
                    t2 = (a * a + d2) * dt2
                    sw = dt * (one - t2 * sixth * (one - t2 * twentieth))
                    cs = one + t2 * (-half + t2 * (c24 - t2 * c720))
                    sa, sd = sw * a, sw * delta
                    n0 = cs * x0[k] + sa * y0[k] + sd * y1[k]
                    m0 = cs * y0[k] - sa * x0[k] - sd * x1[k]
                    n1 = cs * x1[k] - sa * y1[k] + sd * y0[k]
                    m1 = cs * y1[k] + sa * x1[k] - sd * x0[k]
                    if renorm:
                        f = three_halves - half * (n0 * n0 + m0 * m0 + n1 * n1 + m1 * m1)
                        n0, m0, n1, m1 = n0 * f, m0 * f, n1 * f, m1 * f
                    spike = (vk >= v_th) & (not refr)
                    bv[k] = v_reset if spike else vk
                    br[k] = span - 1 if spike else (br[k] - 1 if refr else 0)
                    bc[k] += 1 if spike else 0
                    x0[k] = one if spike else n0
                    y0[k] = f32(0.0) if spike else m0
                    x1[k] = f32(0.0) if spike else n1
                    y1[k] = f32(0.0) if spike else m1
            v[lo:hi], ref[lo:hi], count[lo:hi] = bv, br, bc
            re0[lo:hi], im0[lo:hi], re1[lo:hi], im1[lo:hi] = x0, y0, x1, y1
        return count

    _KERNELS["pure"] = run
    return run


def mixed_kernel(substeps: int, terms: int) -> Any:
    """``run(v, ref, x, y, z, current, steps, consts) -> spike counts`` for a Taylor plan of the Bloch
    propagator (``substeps`` x ``terms``, compile-time constants of the kernel), in place."""
    key = ("mixed", substeps, terms)
    if key in _KERNELS:
        return _KERNELS[key]
    numba = _numba()
    f32 = np.float32
    one, two = f32(1.0), f32(2.0)
    inv_k = tuple(f32(1.0 / k) for k in range(terms, 0, -1))

    @numba.njit(parallel=True, fastmath=True, error_model="numpy")
    def run(v, ref, bx, by, bz, current, steps, consts):
        v_rest, v_th, v_reset, decay, gain, inv_range, delta, dt = consts[:8]
        span = np.int32(consts[8])
        h = dt / f32(substeps)
        d2, e1, e2 = two * delta * h, consts[9] * h, consts[10] * h
        n = v.shape[0]
        count = np.zeros(n, np.int32)
        for b in numba.prange((n + BLOCK - 1) // BLOCK):
            lo = b * BLOCK
            hi = min(n, lo + BLOCK)
            bv, br, bi = v[lo:hi].copy(), ref[lo:hi].copy(), current[lo:hi].copy()
            xs, ys, zs = bx[lo:hi].copy(), by[lo:hi].copy(), bz[lo:hi].copy()
            bc = np.zeros(hi - lo, np.int32)
            for s in range(steps):
                for k in range(hi - lo):
                    refr = br[k] > 0
                    vk = v_reset if refr else gain * bi[k] + ((bv[k] - v_rest) * decay + v_rest)
                    a2 = two * (vk - v_rest) * inv_range * h
                    x, y, z = xs[k], ys[k], zs[k]
                    for _ in range(substeps):
                        zx, zy, zz = x, y, z
                        for ik in inv_k:
                            dx = -e2 * zx - a2 * zy
                            dy = a2 * zx - e2 * zy - d2 * zz
                            dz = d2 * zy - e1 * zz + e1
                            zx, zy, zz = x + ik * dx, y + ik * dy, z + ik * dz
                        x, y, z = zx, zy, zz
                    r2 = x * x + y * y + z * z
                    shrink = one / np.sqrt(r2) if r2 > one else one
                    x, y, z = x * shrink, y * shrink, z * shrink
                    spike = (vk >= v_th) & (not refr)
                    bv[k] = v_reset if spike else vk
                    br[k] = span - 1 if spike else (br[k] - 1 if refr else 0)
                    bc[k] += 1 if spike else 0
                    xs[k] = f32(0.0) if spike else x
                    ys[k] = f32(0.0) if spike else y
                    zs[k] = one if spike else z
            v[lo:hi], ref[lo:hi], count[lo:hi] = bv, br, bc
            bx[lo:hi], by[lo:hi], bz[lo:hi] = xs, ys, zs
        return count

    _KERNELS[key] = run
    return run
