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
    "SENTINEL",
    "bucket",
    "all_to_all",
    "one_to_one",
    "fixed_probability",
    "fixed_indegree",
    "fixed_total_number",
    "explicit",
    "estimate",
]

_INDEX = jnp.int32


# Padding entries of a synapse list: their `pre` is SENTINEL, which sorts last and is out of range of
# every scatter (mode="drop"), so padded lists flow through the build without being cut to size.
SENTINEL = np.iinfo(np.int32).max


class Synapses(NamedTuple):
    """Synapse list sorted by ``(pre, post)``, ``count`` valid entries first and padding after them
    (``pre == SENTINEL``); ``order`` maps it back to the user's order (explicit rule)."""

    pre: jax.Array  # (M,) int32 — presynaptic index in the source group (SENTINEL: padding)
    post: jax.Array  # (M,) int32 — postsynaptic index in the target group
    order: jax.Array | None  # (M,) int — position of each synapse in the user's arrays, else None
    count: int  # number of valid synapses, M >= count


def bucket(m: int) -> int:
    """Padded length for ``m`` synapses, so that networks of many projections compile each build kernel
    for a few shapes only: the next power of two up to 2^22 (at least 256), then the next multiple of
    an eighth of a power of two (at most 12.5% padding where memory matters)."""
    if m <= 256:
        return 256
    if m <= 2**22:
        return 1 << (m - 1).bit_length()
    k = (m - 1).bit_length() - 4
    return -(-m // (1 << k)) * (1 << k)


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
    p = _real("fixed_probability", "p", p)
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


def estimate(rule: Rule, n_pre: int, n_post: int) -> tuple[int, int]:
    """``(synapses, widest row)`` the rule is expected to draw for groups of ``n_pre`` and ``n_post``
    neurons, before drawing (for the memory preflight of ``Network.build``).

    Exact for ``all_to_all``, ``one_to_one``, ``fixed_indegree`` and ``fixed_total_number`` counts and
    for ``explicit``; ``fixed_probability`` gives its mean ``p n_pre n_post``. Random row lengths are
    estimated as mean + 3 sd (the widest row sets the width of the event path's ELL arrays).

    Example:
        >>> estimate(fixed_probability(0.1), 1000, 1000)
        (100000, 129)
    """
    if rule.name == "explicit":
        m = int(rule.pre.size)
        widest = int(np.bincount(rule.pre).max()) if m and rule.pre.min() >= 0 else 0
        return m, widest
    if rule.name == "all_to_all":
        return n_pre * n_post, n_post
    if rule.name == "one_to_one":
        return n_pre, 1
    if rule.name == "fixed_probability":
        mean = rule.p * n_post
        return int(round(rule.p * n_pre * n_post)), min(n_post, math.ceil(mean + 3 * math.sqrt(mean * (1 - rule.p))))
    m = rule.k * n_post if rule.name == "fixed_indegree" else rule.k
    mean = m / max(n_pre, 1)
    return m, math.ceil(mean + 3 * math.sqrt(mean)) if m else 0


def _real(rule: str, name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{rule}: {name} must be a real number, but is {value!r}") from None


def _count(rule: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigurationError(f"{rule}: {name} must be an int >= 0, but is {value!r}")
    return int(value)


def _sorted(pre: jax.Array, post: jax.Array, count: int, post_sorted: bool = False, order: jax.Array | None = None) -> Synapses:
    """Synapses in ``(pre, post)`` order (padding last). ``post_sorted``: ``post`` is already
    non-decreasing, so one stable sort by ``pre`` suffices."""
    if not post_sorted:
        idx = _stable_argsort(post)
        pre, post, order = _take(pre, post, order, idx)
    pre, post, order = _take(pre, post, order, _stable_argsort(pre))
    return Synapses(pre, post, order, count)


def sort_synapses(syn: Synapses) -> Synapses:
    """``syn`` re-sorted by ``(pre, post)`` (padding last)."""
    return _sorted(syn.pre, syn.post, syn.count, order=syn.order)


def _stable_argsort(keys: jax.Array) -> jax.Array:
    # XLA:CPU's comparison sort is several times slower than NumPy's on tens of millions of keys;
    # a stable argsort is unique, so both give the same order.
    if jax.default_backend() == "cpu":
        return jnp.asarray(np.argsort(np.asarray(keys), kind="stable").astype(np.int32))
    return jnp.argsort(keys, stable=True).astype(jnp.int32)


def drop_autapses(syn: Synapses, autapses: bool) -> Synapses:
    """Turn ``i -> i`` entries into padding (re-sorted to the end)."""
    if autapses:
        return syn
    pre, n_auto = _mark_autapses(syn.pre, syn.post)
    if int(n_auto) == 0:
        return syn
    pre, post, order = _take(pre, syn.post, syn.order, _stable_argsort(pre))
    return Synapses(pre, post, order, syn.count - int(n_auto))


@jax.jit
def _mark_autapses(pre: jax.Array, post: jax.Array) -> tuple[jax.Array, jax.Array]:
    auto = (pre == post) & (pre != SENTINEL)
    return jnp.where(auto, SENTINEL, pre), jnp.sum(auto, dtype=jnp.int32)


def _all_to_all(rule: Rule, key, n_pre, n_post, autapses, multapses) -> Synapses:
    m = n_pre * n_post
    pre, post = _grid(bucket(m), m, n_post)
    return drop_autapses(Synapses(pre, post, None, m), autapses)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _grid(size: int, m: int, n_post: int) -> tuple[jax.Array, jax.Array]:
    i = jnp.arange(size, dtype=_INDEX)
    return jnp.where(i < m, i // n_post, SENTINEL), jnp.where(i < m, i % n_post, 0)


def _one_to_one(rule: Rule, key, n_pre, n_post, autapses, multapses) -> Synapses:
    if n_pre != n_post:
        raise ConfigurationError(f"one_to_one needs groups of equal size, but they have {n_pre} and {n_post} neurons")
    pre, _ = _grid(bucket(n_pre), n_pre, 1)
    return drop_autapses(Synapses(pre, jnp.where(pre == SENTINEL, 0, pre), None, n_pre), autapses)


def _fixed_probability(rule: Rule, key, n_pre, n_post, autapses, multapses) -> Synapses:
    p = rule.p
    if p == 0.0 or n_pre == 0 or n_post == 0:
        return Synapses(jnp.full(256, SENTINEL, _INDEX), jnp.zeros(256, _INDEX), None, 0)
    if p == 1.0:
        return _all_to_all(rule, key, n_pre, n_post, autapses, multapses)
    # Row width: mean + 8 sd of the binomial row length (+ slack); rows that would need more are
    # detected below and the row block is redrawn wider, so the sample stays exact.
    mean = n_post * p
    width = int(min(n_post, math.ceil(mean + 8 * math.sqrt(mean * (1 - p)) + 16)))
    log_q = math.log1p(-p)
    rows_per_block = max(1, int(2**24 // max(width, 1)))
    pres, posts, total = [], [], 0
    for start in range(0, n_pre, rows_per_block):
        rows = min(rows_per_block, n_pre - start)
        k = jax.random.fold_in(key, start)
        while True:
            cols, complete, count = _geometric_rows(k, rows, width, n_post, log_q)
            if bool(complete) or width >= n_post * 4:
                break
            width *= 2
        count = int(count)
        pre, post = _compact(cols, jnp.int32(start), jnp.int32(count), n_post, bucket(count))
        pres.append(pre)
        posts.append(post)
        total += count
    if len(pres) == 1:
        syn = Synapses(pres[0], posts[0], None, total)
    else:  # padding of each block sits between blocks: move it to the end
        pre, post = jnp.concatenate(pres), jnp.concatenate(posts)
        pre, post, _ = _take(pre, post, None, _stable_argsort(pre))
        syn = Synapses(pre, post, None, total)
    return drop_autapses(syn, autapses)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _compact(cols: jax.Array, start: jax.Array, count: jax.Array, n_post: int, size: int):
    """The targets below ``n_post`` of a block of rows, row by row, as a padded ``(size,)`` list."""
    r, c = jnp.nonzero(cols < n_post, size=size, fill_value=0)
    valid = jnp.arange(size, dtype=_INDEX) < count
    return jnp.where(valid, r.astype(_INDEX) + start, SENTINEL).astype(_INDEX), jnp.where(valid, cols[r, c], 0).astype(_INDEX)


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
    m = k * n_post
    post, pre = _indegree_draw(key, k, n_pre, n_post, autapses, bucket(m))
    if not multapses:
        pre = _redraw_duplicates(key, pre, post, n_pre, k, autapses)
    return _sorted(pre, post, m, post_sorted=True)


# Build-time kernels are jitted whole: op by op, every new synapse count would compile each primitive
# separately (dozens of compilations per projection).
@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _indegree_draw(key: jax.Array, k: int, n_pre: int, n_post: int, autapses: bool, size: int):
    """``k`` partners per target, target-major, padded to ``size`` (padding: pre SENTINEL, post n_post)."""
    post = jnp.repeat(jnp.arange(n_post, dtype=_INDEX), k, total_repeat_length=k * n_post)
    post = jnp.concatenate([post, jnp.full((size - k * n_post,), n_post, _INDEX)])
    pre = _draw_partners(key, jnp.minimum(post, n_post - 1), n_pre, autapses)
    return post, jnp.where(post < n_post, pre, SENTINEL)


@functools.partial(jax.jit, static_argnums=(4,))
def _total_draw(key: jax.Array, m: jax.Array, n_pre: jax.Array, n_post: jax.Array, size: int):
    """``m`` uniform pairs padded to ``size`` (counts traced: one compilation per padded size)."""
    k_pre, k_post = jax.random.split(key)
    i = jnp.arange(size, dtype=_INDEX)
    post = jnp.where(i < m, jax.random.randint(k_post, (size,), 0, n_post, _INDEX), 0)
    pre = jnp.where(i < m, _draw_partners(k_pre, post, n_pre, True), SENTINEL)
    return post, pre


@jax.jit
def _take(pre: jax.Array, post: jax.Array, order: jax.Array | None, idx: jax.Array):
    return pre[idx].astype(_INDEX), post[idx].astype(_INDEX), None if order is None else order[idx]


def _draw_partners(key: jax.Array, post: jax.Array, n_pre: int, autapses: bool) -> jax.Array:
    """Uniform presynaptic partners for each entry of ``post``; without autapses, from ``n_pre - 1``
    candidates with the diagonal skipped (so the law stays uniform over the allowed ones)."""
    if autapses:
        return jax.random.randint(key, post.shape, 0, n_pre, _INDEX)
    pre = jax.random.randint(key, post.shape, 0, n_pre - 1, _INDEX)
    return jnp.where(pre >= post, pre + 1, pre)


def _redraw_duplicates(key, pre, post, n_pre, k, autapses):
    # Rows are contiguous blocks of k entries (padding after them); redraw repeated partners until
    # each row is distinct.
    m = post.shape[0] - int(jnp.sum(post == post[-1])) if k else 0  # padding has post = n_post
    m = (m + k - 1) // k * k if k else 0
    pad_pre = pre[m:]
    pre, post = pre[:m], post[:m]
    for attempt in range(1, 10_000):
        rows = pre.reshape(-1, k)
        srt = jnp.sort(rows, axis=1)
        dup_sorted = jnp.concatenate([jnp.zeros((rows.shape[0], 1), bool), srt[:, 1:] == srt[:, :-1]], axis=1)
        if not bool(dup_sorted.any()):
            return jnp.concatenate([pre, pad_pre])
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
    k_pre = jax.random.split(key)[0]
    size = bucket(m)
    post, pre = _total_draw(key, jnp.int32(m), jnp.int32(n_pre), jnp.int32(n_post), size)
    if not autapses:
        # redraw i -> i pairs until none is left; the law is uniform over the allowed pairs
        for attempt in range(1, 1000):
            bad = pre == post
            if not bool(bad.any()):
                break
            pre = jnp.where(bad, jax.random.randint(jax.random.fold_in(k_pre, attempt), (size,), 0, n_pre, _INDEX), pre)
    return _sorted(pre, post, m)


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
    return Synapses(jnp.asarray(pre[order], _INDEX), jnp.asarray(post[order], _INDEX), jnp.asarray(order), int(pre.size))
