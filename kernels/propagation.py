"""Event-driven synaptic propagation on the CUDA kernel ``qsn_propagate`` (kernels/cuda/propagation.cu),
on either runner (CUDA through CuPy, or the host emulation).

It computes what :meth:`qsn.networks.projection.EventProjection.deliver` computes on the ``"event"`` path: every
spiking presynaptic neuron's ELL row is scattered into the target group's delay ring buffer. The
kernel reads only the rows of the neurons that spiked (one warp per row, coalesced over the row's
columns) and adds into the ring with atomics, so the cost follows the synaptic events, and there is
no capacity: unlike the JAX path (``spec.block`` rows per step), no spike is ever left for a re-run.
Sums into one ring entry happen in a different order than on the JAX path (float32 rounding only).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from qsn.errors import ConfigurationError
from qsn.kernels.runner import Runner
from qsn.networks.projection import ProjectionArrays, ProjectionSpec

__all__ = ["deliver", "propagate", "check_supported", "WARP"]

WARP = 32  # threads per spiking row; QSN_WARP in propagation.cu


def check_supported(spec: ProjectionSpec, weights: Any, ring: Any) -> None:
    """Raise :class:`ConfigurationError` when the kernel cannot run this projection: the dense path,
    or weights/ring buffer that are not float32 (the kernel reads and adds float32)."""
    if spec.path != "event":
        raise ConfigurationError(
            f"the propagation kernel runs the 'event' path, but projection {spec.name!r} uses the {spec.path!r} path: "
            f"build it with propagation='event' or deliver it with its own DenseProjection.deliver"
        )
    for what, arr in (("weights", weights), ("ring buffer", ring)):
        if np.dtype(arr.dtype) != np.float32:
            raise ConfigurationError(
                f"the propagation kernel runs float32, but projection {spec.name!r} has {what} of dtype {arr.dtype}: "
                f"build the network with dtype=float32"
            )


def propagate(runner: Runner, spec: ProjectionSpec, targets: Any, weights: Any, delays: Any, rows: Any, ring: Any,
              t: int) -> None:
    """Scatter the ELL rows ``rows`` into ``ring`` in place (arrays of ``runner.xp``, C-contiguous).

    Args:
        runner: :class:`~qsn.kernels.runner.CupyRunner` or :class:`~qsn.kernels.runner.HostRunner`.
        spec: the projection (``"event"`` path; see :func:`check_supported`).
        targets: ``(n_pre + 1, K)`` int32 postsynaptic indices; ``n_post`` marks padding. Rows must be
            left-packed, as ``qsn.networks.projection`` builds them (synapses first, padding after):
            the kernel stops reading a row at its first padding entry.
        weights: ``(n_pre + 1, K)`` float32, in the receptor's units (mV for Delta, current for PscExp…).
        delays: ``(n_pre + 1, K)`` int32 delays in steps, ``>= 0``.
        rows: ``(n_spiking,)`` int32 presynaptic rows that spiked at step ``t``, each in ``[0, n_pre]``
            (row ``n_pre`` is all padding and adds nothing). A row listed twice is delivered twice.
        ring: ``(receptors, D, n_post)`` float32 ring buffer of the target group, updated in place:
            ``ring[spec.receptor, (t + 1 + delay) % D, target] += weight``.
        t: the step (>= 0) at which ``rows`` spiked.
    """
    n_spiking = int(rows.shape[0])
    if n_spiking == 0:
        return  # nothing to add (and a grid of zero threads is no valid launch)
    receptors, depth, n_post = (int(s) for s in ring.shape)
    if n_post != spec.n_post or not 0 <= spec.receptor < receptors:
        raise ConfigurationError(
            f"projection {spec.name!r} targets receptor {spec.receptor} of {spec.n_post} neurons, but the ring buffer "
            f"has shape {tuple(ring.shape)} (receptors, D, n_post)"
        )
    if tuple(targets.shape) != (spec.n_pre + 1, targets.shape[1]) or weights.shape != targets.shape \
            or delays.shape != targets.shape:
        raise ConfigurationError(
            f"projection {spec.name!r}: targets, weights and delays must be (n_pre + 1, K) = ({spec.n_pre + 1}, K), "
            f"but have shapes {tuple(targets.shape)}, {tuple(weights.shape)}, {tuple(delays.shape)}"
        )
    args = [
        np.int32(n_spiking), rows, targets, weights, delays,
        np.int32(n_post), np.int32(targets.shape[1]), np.int32(depth), np.int32(spec.receptor), np.int32(t),
        ring,
    ]
    runner.launch("propagation", "qsn_propagate", defines=(), precise=False, threads=n_spiking * WARP, args=args)


def deliver(runner: Runner, spec: ProjectionSpec, arrays: ProjectionArrays, weights: jax.Array, spikes: jax.Array,
            ring: jax.Array, t: Any) -> jax.Array:
    """:meth:`qsn.networks.projection.EventProjection.deliver` (event path) on the propagation kernel.

    Args:
        runner: :class:`~qsn.kernels.runner.CupyRunner` or :class:`~qsn.kernels.runner.HostRunner`.
        spec, arrays: the built projection (``"event"`` path: ``arrays.targets`` and ``arrays.delays``
            ``(n_pre + 1, K)``, delays in steps: int32, or int16 as the build stores them where they fit).
        weights: ``(n_pre + 1, K)`` float32 ELL weights, in the receptor's units.
        spikes: ``(pre_size,)`` bool (or 0/1) spikes of the presynaptic group at step ``t`` (the rows are
            its neurons ``spec.first`` .. ``spec.first + n_pre - 1``).
        ring: ``(receptors, D, n_post)`` float32 ring buffer of the target group (JAX arrays are
            immutable: the kernel updates a copy).
        t: the step (int or int32 scalar array, ``>= 0``).

    Returns:
        The new ring buffer, ``(receptors, D, n_post)`` float32: ``ring`` plus, for every spiking row
        ``r`` and column ``c`` with ``targets[r, c] < n_post``, ``weights[r, c]`` at
        ``[spec.receptor, (t + 1 + delays[r, c]) % D, targets[r, c]]``.

    Raises:
        ConfigurationError: dense path, non-float32 weights or ring, or shapes that do not match.
    """
    check_supported(spec, weights, ring)
    if tuple(spikes.shape) != (spec.pre_size,):
        raise ConfigurationError(
            f"projection {spec.name!r}: spikes must be ({spec.pre_size},), but have shape {tuple(spikes.shape)}"
        )
    spikes = spec.presynaptic(spikes)
    xp = runner.xp
    # the compact row list sizes the launch; on CuPy this one count is the step's only host sync
    rows = xp.flatnonzero(runner.from_jax(spikes)).astype(xp.int32)
    if rows.shape[0] == 0:
        return ring
    out = xp.array(runner.from_jax(ring), copy=True)  # the kernel adds in place; JAX's buffer must stay intact
    delays = xp.asarray(runner.from_jax(arrays.delays), dtype=xp.int32)  # (stored int16 where they fit)
    propagate(runner, spec, runner.from_jax(arrays.targets), runner.from_jax(weights), delays, rows, out, int(t))
    return runner.to_jax(out)
