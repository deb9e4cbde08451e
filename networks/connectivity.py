"""Connectivity rules, generated on the device from a key without an ``n_pre x n_post`` matrix.

A rule turns ``(key, n_pre, n_post)`` into a list of synapses ``(pre, post)`` sorted by presynaptic
neuron (then postsynaptic), the order in which weights and delays are drawn and the event-driven
path stores them. Rules follow NEST's names and defaults:

======================== ===============================================================================
``all_to_all()``          every pair
``one_to_one()``          ``i -> i`` (``n_pre == n_post``)
``fixed_probability(p)``  each pair independently with probability ``p`` (Bernoulli; no multapses)
``fixed_indegree(k)``     each postsynaptic neuron draws ``k`` presynaptic partners uniformly
``fixed_total_number(m)`` ``m`` pairs drawn uniformly
``explicit(pre, post)``   the user's arrays (weights and delays, if arrays, follow the same order)
======================== ===============================================================================

``fixed_probability`` costs O(synapses), not O(n_pre n_post): the gaps between consecutive targets of
a row are geometric, so each row is a cumulative sum of geometric draws (exact Bernoulli sampling).
``allow_autapses`` (``i -> i`` when a group projects onto itself) defaults to True, as in NEST;
``allow_multapses`` (repeated pairs) defaults to True for the rules that draw with replacement.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError

__all__ = [
    "Rule",
    "Synapses",
    "all_to_all",
    "one_to_one",
    "fixed_probability",
    "fixed_indegree",
    "fixed_total_number",
    "explicit",
]

_INDEX = jnp.int32


class Synapses(NamedTuple):
    """Synapse list sorted by ``(pre, post)``; ``order`` maps it back to the user's order (explicit rule)."""

    pre: jax.Array  # (m,) int32 — presynaptic index in the source group
    post: jax.Array  # (m,) int32 — postsynaptic index in the target group
    order: jax.Array | None  # (m,) int — position of each synapse in the user's arrays, else None


class Rule(eqx.Module):
    """A connectivity rule. Build one with the functions of this module."""

    name: str = eqx.field(static=True)
    p: float = eqx.field(static=True, default=0.0)
    k: int = eqx.field(static=True, default=0)
    pre: Any = None
    post: Any = None

    def generate(self, key: jax.Array, n_pre: int, n_post: int, *, autapses: bool, multapses: bool) -> Synapses:
        """Draw the synapses; ``autapses=False`` removes ``i -> i`` (same group only)."""
        gen = {
            "all_to_all": _all_to_all,
            "one_to_one": _one_to_one,
            "fixed_probability": _fixed_probability,
            "fixed_indegree": _fixed_indegree,
            "fixed_total_number": _fixed_total_number,
            "explicit": _explicit,
        }[self.name]
        return gen(self, key, n_pre, n_post, autapses, multapses)


def all_to_all() -> Rule:
    """Every pair ``(i, j)``."""
    return Rule("all_to_all")


def one_to_one() -> Rule:
    """``i -> i``; the two groups must have the same size."""
    return Rule("one_to_one")


def fixed_probability(p: float) -> Rule:
    """Each pair independently with probability ``p`` in ``[0, 1]``."""
    p = float(p)
    if not (0.0 <= p <= 1.0):
        raise ConfigurationError(f"fixed_probability: p must be in [0, 1], but is {p!r}")
    return Rule("fixed_probability", p=p)


def fixed_indegree(k: int) -> Rule:
    """Each postsynaptic neuron receives ``k >= 0`` synapses from uniformly drawn presynaptic neurons."""
    return Rule("fixed_indegree", k=_count("fixed_indegree", "k", k))


def fixed_total_number(m: int) -> Rule:
    """``m >= 0`` synapses with pre and post drawn uniformly and independently."""
    return Rule("fixed_total_number", k=_count("fixed_total_number", "m", m))


def explicit(pre: Any, post: Any) -> Rule:
    """The synapses ``pre[s] -> post[s]`` given as 1-D integer arrays of equal length."""
    pre_a, post_a = np.asarray(pre), np.asarray(post)
    for name, arr in (("pre", pre_a), ("post", post_a)):
        if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
            raise ConfigurationError(f"explicit: `{name}` must be a 1-D integer array, but has shape {arr.shape}, dtype {arr.dtype}")
    if pre_a.shape != post_a.shape:
        raise ConfigurationError(f"explicit: `pre` and `post` must have the same length, but have {pre_a.size} and {post_a.size}")
    return Rule("explicit", pre=pre_a.astype(np.int64), post=post_a.astype(np.int64))


def _count(rule: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigurationError(f"{rule}: {name} must be an int >= 0, but is {value!r}")
    return int(value)


def _sorted(pre: jax.Array, post: jax.Array, post_sorted: bool = False) -> Synapses:
    """Synapses in ``(pre, post)`` order. ``post_sorted``: ``post`` is already non-decreasing, so one
    stable sort by ``pre`` suffices."""
    order = _stable_argsort(post) if not post_sorted else None
    if order is not None:
        pre, post = pre[order], post[order]
    idx = _stable_argsort(pre)
    return Synapses(pre[idx].astype(_INDEX), post[idx].astype(_INDEX), None)


def _stable_argsort(keys: jax.Array) -> jax.Array:
    # XLA:CPU's comparison sort is several times slower than NumPy's on tens of millions of keys;
    # a stable argsort is unique, so both give the same order.
    if jax.default_backend() == "cpu":
        return jnp.asarray(np.argsort(np.asarray(keys), kind="stable"))
    return jnp.argsort(keys, stable=True)


def _drop_autapses(syn: Synapses, autapses: bool) -> Synapses:
    if autapses:
        return syn
    keep = np.asarray(syn.pre != syn.post)
    if keep.all():
        return syn
    idx = jnp.asarray(np.flatnonzero(keep))
    return Synapses(syn.pre[idx], syn.post[idx], None if syn.order is None else syn.order[idx])


def _all_to_all(rule: Rule, key, n_pre, n_post, autapses, multapses) -> Synapses:
    pre = jnp.repeat(jnp.arange(n_pre, dtype=_INDEX), n_post)
    post = jnp.tile(jnp.arange(n_post, dtype=_INDEX), n_pre)
    return _drop_autapses(Synapses(pre, post, None), autapses)


def _one_to_one(rule: Rule, key, n_pre, n_post, autapses, multapses) -> Synapses:
    if n_pre != n_post:
        raise ConfigurationError(f"one_to_one needs groups of equal size, but they have {n_pre} and {n_post} neurons")
    idx = jnp.arange(n_pre, dtype=_INDEX)
    return _drop_autapses(Synapses(idx, idx, None), autapses)


def _fixed_probability(rule: Rule, key, n_pre, n_post, autapses, multapses) -> Synapses:
    p = rule.p
    if p == 0.0 or n_pre == 0 or n_post == 0:
        return Synapses(jnp.zeros(0, _INDEX), jnp.zeros(0, _INDEX), None)
    if p == 1.0:
        return _all_to_all(rule, key, n_pre, n_post, autapses, multapses)
    # Row width: mean + 8 sd of the binomial row length (+ slack); rows that would need more are
    # detected below and the row block is redrawn wider, so the sample stays exact.
    mean = n_post * p
    width = int(min(n_post, math.ceil(mean + 8 * math.sqrt(mean * (1 - p)) + 16)))
    log_q = math.log1p(-p)
    rows_per_block = max(1, int(2**24 // max(width, 1)))
    pres, posts = [], []
    for start in range(0, n_pre, rows_per_block):
        rows = min(rows_per_block, n_pre - start)
        k = jax.random.fold_in(key, start)
        while True:
            cols, complete, count = _geometric_rows(k, rows, width, n_post, log_q)
            if bool(complete) or width >= n_post * 4:
                break
            width *= 2
        r, c = jnp.nonzero(cols < n_post, size=int(count))
        pres.append((r + start).astype(_INDEX))
        posts.append(cols[r, c].astype(_INDEX))
    syn = Synapses(jnp.concatenate(pres), jnp.concatenate(posts), None)
    return _drop_autapses(syn, autapses)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _geometric_rows(key: jax.Array, rows: int, width: int, n_post: int, log_q: float):
    """Targets of ``rows`` Bernoulli rows as cumulative sums of geometric gaps ``(rows, width)``; whether
    every row ran past ``n_post`` (so none was cut short) and the number of targets below ``n_post``."""
    tiny = jnp.finfo(jnp.float32).tiny
    u = jax.random.uniform(key, (rows, width), jnp.float32, minval=tiny, maxval=1.0)
    gaps = jnp.floor(jnp.log(u) / log_q).astype(jnp.int32) + 1
    cols = jnp.cumsum(gaps, axis=1, dtype=jnp.int32) - 1  # first target at gap - 1, then successive gaps
    return cols, jnp.all(cols[:, -1] >= n_post), jnp.sum(cols < n_post)


def _fixed_indegree(rule: Rule, key, n_pre, n_post, autapses, multapses) -> Synapses:
    k = rule.k
    choices = n_pre - (0 if autapses else 1)
    if k and (choices <= 0 or (not multapses and k > choices)):
        raise ConfigurationError(
            f"fixed_indegree({k}) cannot draw {k} {'distinct ' if not multapses else ''}partners from {max(choices, 0)} candidates"
        )
    post = jnp.repeat(jnp.arange(n_post, dtype=_INDEX), k)
    pre = _draw_partners(key, post, n_pre, autapses)
    if not multapses:
        pre = _redraw_duplicates(key, pre, post, n_pre, k, autapses)
    return _sorted(pre, post, post_sorted=True)


def _draw_partners(key: jax.Array, post: jax.Array, n_pre: int, autapses: bool) -> jax.Array:
    """Uniform presynaptic partners for each entry of ``post``; without autapses, from ``n_pre - 1``
    candidates with the diagonal skipped (so the law stays uniform over the allowed ones)."""
    if autapses:
        return jax.random.randint(key, post.shape, 0, n_pre, _INDEX)
    pre = jax.random.randint(key, post.shape, 0, n_pre - 1, _INDEX)
    return jnp.where(pre >= post, pre + 1, pre)


def _redraw_duplicates(key, pre, post, n_pre, k, autapses):
    # Rows are contiguous blocks of k entries; redraw repeated partners until each row is distinct.
    for attempt in range(1, 10_000):
        rows = pre.reshape(-1, k)
        srt = jnp.sort(rows, axis=1)
        dup_sorted = jnp.concatenate([jnp.zeros((rows.shape[0], 1), bool), srt[:, 1:] == srt[:, :-1]], axis=1)
        if not bool(dup_sorted.any()):
            return pre
        # mark every copy after the first, in O(k log k) per row: sort, compare neighbours, scatter back
        order = jnp.argsort(rows, axis=1, stable=True)
        row_ids = jnp.arange(rows.shape[0])[:, None]
        dup = jnp.zeros_like(dup_sorted).at[row_ids, order].set(dup_sorted).reshape(-1)
        fresh = _draw_partners(jax.random.fold_in(key, attempt), post, n_pre, autapses)
        pre = jnp.where(dup, fresh, pre)
    raise ConfigurationError("fixed_indegree: could not draw distinct partners (k too close to n_pre)")


def _fixed_total_number(rule: Rule, key, n_pre, n_post, autapses, multapses) -> Synapses:
    m = rule.k
    if m and (n_pre == 0 or n_post == 0):
        raise ConfigurationError(f"fixed_total_number({m}) needs non-empty groups")
    if not multapses:
        raise ConfigurationError("fixed_total_number supports allow_multapses=True only (as drawn by NEST)")
    k_pre, k_post = jax.random.split(key)
    post = jax.random.randint(k_post, (m,), 0, n_post, _INDEX)
    pre = _draw_partners(k_pre, post, n_pre, True)
    if not autapses:
        # redraw i -> i pairs until none is left; the law is uniform over the allowed pairs
        for attempt in range(1, 1000):
            bad = pre == post
            if not bool(bad.any()):
                break
            pre = jnp.where(bad, jax.random.randint(jax.random.fold_in(k_pre, attempt), (m,), 0, n_pre, _INDEX), pre)
    return _sorted(pre, post)


def _explicit(rule: Rule, key, n_pre, n_post, autapses, multapses) -> Synapses:
    pre, post = rule.pre, rule.post
    for name, arr, n in (("pre", pre, n_pre), ("post", post, n_post)):
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            bad = int(np.flatnonzero((arr < 0) | (arr >= n))[0])
            raise ConfigurationError(f"explicit: `{name}[{bad}]` = {arr[bad]} is outside a group of {n} neurons")
    if not autapses and np.any(pre == post):
        bad = int(np.flatnonzero(pre == post)[0])
        raise ConfigurationError(f"explicit: synapse {bad} is an autapse ({pre[bad]} -> {post[bad]}) but allow_autapses=False")
    if not multapses and pre.size:
        pairs = pre * n_post + post
        uniq, first, counts = np.unique(pairs, return_index=True, return_counts=True)
        if (counts > 1).any():
            bad = int(uniq[counts > 1][0])
            raise ConfigurationError(f"explicit: pair ({bad // n_post} -> {bad % n_post}) repeats but allow_multapses=False")
    order = np.lexsort((post, pre))
    return Synapses(jnp.asarray(pre[order], _INDEX), jnp.asarray(post[order], _INDEX), jnp.asarray(order))
