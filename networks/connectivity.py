"""Connectivity rules, drawn from a key straight into the event path's row layout.

A rule turns ``(key, n_pre, n_post)`` into :class:`Rows`: row ``i`` holds the targets of source ``i``
in increasing order, left-packed and padded with ``n_post`` (the ELL layout the event path stores),
so the synapses come out sorted by ``(pre, post)`` without a global sort. Rules follow NEST's names
and defaults:

======================== ===============================================================================
``all_to_all()``          every pair
``one_to_one()``          ``i -> i`` (``n_pre == n_post``)
``fixed_probability(p)``  each pair independently with probability ``p`` (Bernoulli; no multapses)
``fixed_indegree(k)``     each postsynaptic neuron draws ``k`` presynaptic partners uniformly
``fixed_total_number(m)`` ``m`` pairs drawn uniformly
``explicit(pre, post)``   the user's arrays (weights and delays, if arrays, follow the same order)
======================== ===============================================================================

Every random rule costs O(synapses) time and memory, never O(n_pre n_post), in kernels of one fixed
block shape (``BLOCK`` entries), so a network of many projections compiles each kernel once:

* the random rules (``fixed_probability``, ``fixed_indegree``, ``fixed_total_number``) draw by tiles
  of targets, each tile from its own key (``fold_in(key, tile)``), so the synapses onto any range of
  targets are drawn without the rest (``generate(..., targets=(lo, hi))``): a partitioned network's
  devices draw the synapses onto their own neurons only, and they are the ones a single device draws;
* ``fixed_probability``: the gaps between consecutive targets of a row within a tile are geometric, so
  each row is a cumulative sum of geometric draws (exact Bernoulli sampling), drawn for blocks of rows;
  a row that runs past the drawn width is continued with further gaps, never redrawn;
* ``fixed_total_number``: the tiles' synapse counts are multinomial, then each tile draws its synapses'
  targets uniformly in it and a uniform source for each;
* ``fixed_indegree``: each target draws its ``k`` sources;
* a tile's ``(source, target)`` keys are bucketed by source (a counting sort) and appended to the
  rows, so rows stay sorted.

``allow_autapses`` (``i -> i`` when a group projects onto itself) defaults to True, as in NEST;
``allow_multapses`` (repeated pairs) defaults to True for the rules that draw with replacement.

Random bits come from XLA's native Threefry bit generator (:func:`build_key`), seeded from the
projection's key: the same key on the same backend gives the same synapses.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from qsn.errors import ConfigurationError

__all__ = [
    "Rule",
    "Rows",
    "Placement",
    "Synapses",
    "BLOCK",
    "build_key",
    "block_size",
    "from_list",
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

    @property
    def by_targets(self) -> bool:
        """Whether the rule draws its synapses by tiles of targets (:func:`_tiled`): then
        :meth:`generate` draws the synapses onto any range of targets without the rest."""
        return self.name in ("fixed_indegree", "fixed_total_number") or (self.name == "fixed_probability" and self.p < 1.0)

    def generate(self, key: jax.Array, n_pre: int, n_post: int, *, autapses: bool, multapses: bool,
                 targets: tuple[int, int] | None = None) -> "Rows":
        """Draw the synapses as :class:`Rows`; ``autapses=False`` excludes ``i -> i`` (same group only).
        ``key`` is a :func:`build_key`. ``targets=(lo, hi)``: only the synapses onto the targets
        ``[lo, hi)``, the same as the whole draw holds onto them (rules :attr:`by_targets` only)."""
        gen = {
            "all_to_all": _all_to_all,
            "one_to_one": _one_to_one,
            "fixed_probability": _fixed_probability,
            "fixed_indegree": _fixed_indegree,
            "fixed_total_number": _fixed_total_number,
            "explicit": _explicit,
        }[self.name]
        if targets is not None:
            if not self.by_targets:
                raise ConfigurationError(f"{self.name}: the synapses onto a range of targets are drawn with the whole rule only")
            return gen(self, key, n_pre, n_post, autapses, multapses, targets)
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


# ------------------------------------------------------------------------------------ construction

BLOCK = 1 << 22  # entries per call of a build kernel (its only shape)
_WIDTH_SD, _WIDTH_SLACK = 8, 16  # fixed_probability draws mean + 8 sd + 16 gaps per row, then continues
_INT32_MAX = np.iinfo(np.int32).max


class Rows(NamedTuple):
    """Synapses of a projection in ELL form, before they are written: ``fill(out)`` writes the
    ``(n_pre, width)`` int32 targets (each row increasing, left-packed, padded with ``n_post``) into
    ``out``, a writable host array of that shape."""

    counts: np.ndarray  # (n_pre,) int64 — synapses per source
    fill: Callable[[np.ndarray], None]
    # () -> (count,) int64: the flat position in the rows of each synapse of per-synapse arrays (explicit:
    # the user's order; all_to_all, one_to_one: (pre, post) order); None where arrays have no order
    slot: Callable[[], np.ndarray] | None
    # the random rules, drawn by target tiles (:class:`Placement`): place(width, rows_at, *writers) calls
    # each writer once per tile; None for the rules drawn whole
    place: Callable[..., None] | None = None

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    @property
    def width(self) -> int:
        """ELL width: the longest row (at least 1)."""
        return max(1, int(self.counts.max())) if self.counts.size else 1


@functools.cache
def _bit_generator():
    """A JAX PRNG implementation on XLA's RngBitGenerator (Threefry): on the CPU 3-6x the throughput
    of ``jax.random``'s Threefry, whose rounds XLA runs as separate element-wise passes."""
    from jax.extend.random import define_prng_impl

    alg = jax.lax.RandomAlgorithm.RNG_THREE_FRY

    def bits(k, width, shape):
        return jax.lax.rng_bit_generator(k, tuple(shape), jnp.dtype(f"uint{width}"), algorithm=alg)[1]

    def split(k, shape):
        return jax.lax.rng_bit_generator(k, (*shape, 4), jnp.uint32, algorithm=alg)[1]

    def fold_in(k, data):
        folded = jax.random.fold_in(jax.random.wrap_key_data(k[:2], impl="threefry2x32"), data)
        return jnp.concatenate([jax.random.key_data(folded), k[2:]])

    def seed(s):
        return jnp.zeros(4, jnp.uint32).at[1].set(jnp.asarray(s).astype(jnp.uint32))

    return define_prng_impl(key_shape=(4,), seed=seed, split=split, random_bits=bits, fold_in=fold_in,
                            name="qsn_build", tag="qb")


# jax.random.fold_in run eagerly dispatches its primitives one by one (~0.3 ms a call, thousands per
# microcircuit build); compiled once it is ~10 us
fold = jax.jit(jax.random.fold_in)


@jax.jit
def _build_key_data(key: jax.Array) -> jax.Array:
    return jnp.concatenate([jax.random.bits(key, (2,), jnp.uint32), jnp.zeros((2,), jnp.uint32)])


def build_key(key: jax.Array) -> jax.Array:
    """A key of the build's bit generator (XLA's Threefry), derived from the JAX key ``key``: every
    ``jax.random`` sampler accepts it."""
    return jax.random.wrap_key_data(_build_key_data(key), impl=_bit_generator())


def _empty_rows(n_pre: int, n_post: int) -> Rows:
    def fill(out):
        out[...] = n_post

    return Rows(np.zeros(n_pre, np.int64), fill, None, lambda width, rows_at, *writers: None)


def block_size(n: int) -> int:
    """Kernel length for ``n`` entries: ``BLOCK``, or for fewer entries the next of ``BLOCK / 8^j``
    (at least 256), so that small projections do not pay for a full block and each kernel compiles for
    at most five shapes (a cold build of the microcircuit at scale 0.1 compiled ~60 programs with
    every power of two)."""
    size = BLOCK
    while size // 8 >= max(n, 256):
        size //= 8
    return size


def _blocks(total: int, size: int | None = None):
    """``(index, start, stop)`` of the blocks of ``size`` (default ``BLOCK``) covering ``range(total)``."""
    size = size or BLOCK
    for b, start in enumerate(range(0, total, size)):
        yield b, start, min(start + size, total)


def _all_to_all(rule: Rule, key, n_pre, n_post, autapses, multapses) -> Rows:
    skip = not autapses  # same group: n_pre == n_post, row i skips target i
    width = n_post - skip

    def fill(out):
        if width == 0:
            out[...] = n_post
            return
        cols = np.arange(width, dtype=np.int32)
        step = max(1, BLOCK // width)
        for r0 in range(0, n_pre, step):
            rows = np.arange(r0, min(r0 + step, n_pre), dtype=np.int32)[:, None]
            out[r0 : r0 + rows.shape[0]] = cols + (cols >= rows) if skip else cols

    return Rows(np.full(n_pre, width, np.int64), fill, lambda: np.arange(n_pre * width, dtype=np.int64))


def _one_to_one(rule: Rule, key, n_pre, n_post, autapses, multapses) -> Rows:
    if n_pre != n_post:
        raise ConfigurationError(f"one_to_one needs groups of equal size, but they have {n_pre} and {n_post} neurons")
    if not autapses:  # onto itself: every synapse is an autapse
        return _empty_rows(n_pre, n_post)

    def fill(out):
        out[:, 0] = np.arange(n_pre, dtype=np.int32)

    return Rows(np.ones(n_pre, np.int64), fill, lambda: np.arange(n_pre, dtype=np.int64))


def from_list(pre: np.ndarray, post: np.ndarray, n_pre: int, n_post: int) -> Rows:
    """Rows of the synapses ``pre[s] -> post[s]`` (host arrays in any order); ``slot[s]`` is where
    synapse ``s`` lands (multapses keep their order)."""
    pre, post = np.asarray(pre, np.int64), np.asarray(post, np.int64)
    order = np.lexsort((post, pre))
    counts = np.bincount(pre, minlength=n_pre).astype(np.int64)
    width = max(1, int(counts.max())) if pre.size else 1
    start = np.cumsum(counts) - counts
    pre_s = pre[order]
    slot_sorted = pre_s * width + (np.arange(pre.size) - start[pre_s])
    slot = np.empty_like(slot_sorted)
    slot[order] = slot_sorted

    def fill(out):
        out[...] = n_post
        out.reshape(-1)[slot_sorted] = post[order]

    return Rows(counts, fill, lambda: slot)


def _explicit(rule: Rule, key, n_pre, n_post, autapses, multapses) -> Rows:
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
        uniq, counts = np.unique(pairs, return_counts=True)
        if (counts > 1).any():
            bad = int(uniq[counts > 1][0])
            raise ConfigurationError(f"explicit: pair ({bad // n_post} -> {bad % n_post}) repeats but allow_multapses=False")
    return from_list(pre, post, n_pre, n_post)


# --- target tiles: the random rules


class Placement(NamedTuple):
    """Where one target tile's synapses land in the ELL rows (what :attr:`Rows.place` gives each writer).

    ``sel`` picks the placed synapses out of the tile's whole sorted list of ``drawn`` (None: all of
    them), so a per-synapse value drawn for the whole tile, in that order, is the same for any range of
    targets the rows are drawn for."""

    tile: int  # tile index: its own key, fold_in(key, tile), for the tile's per-synapse values
    drawn: int  # synapses of the whole tile
    sel: np.ndarray | None  # (m,) int64 positions in the tile's sorted list of the synapses placed; None: all
    positions: np.ndarray  # (m,) int64 flat positions in the (rows, width) arrays
    targets: np.ndarray  # (m,) int32 target (view index) of each


def _tiled(n_pre: int, n_post: int, size: int, keys_of: Callable[[int], Callable[[bool], np.ndarray]],
           targets: tuple[int, int] | None) -> Rows:
    """Rows of a rule drawn by tiles of ``size`` targets: tile ``t`` (targets ``[t size, (t + 1) size)``)
    is ``keys_of(t)(sort)``, its synapses as int32 keys ``pre * size + local`` from ``fold_in(key, t)``
    alone (sorted when ``sort``), so rows drawn for the targets ``[lo, hi)`` (a device's slice) hold the
    very synapses the whole projection's rows hold onto them. ``keys_of(t)`` starts the tile's kernels
    (JAX dispatches them asynchronously): the next tile is drawn while this one is bucketed on the host.
    Tiles are drawn twice, once to count the rows (before the arrays exist) and once to place them, except
    the first ``KEEP_BYTES`` of keys, kept from the count (small projections draw once; a large one keeps
    no synapse list in between)."""
    lo, hi = (0, n_post) if targets is None else targets
    tiles = range(lo // size, -(-hi // size)) if hi > lo else range(0)

    def window(t: int, keys: np.ndarray) -> np.ndarray | None:
        t0 = t * size
        if lo <= t0 and min(t0 + size, n_post) <= hi:
            return None
        local = keys % np.int32(size)
        return np.flatnonzero((local >= lo - t0) & (local < hi - t0))

    kept: dict[int, np.ndarray] = {}  # sorted keys of tiles counted within the budget, for the placement

    budget = [KEEP_BYTES]

    def each(sort: Callable[[], bool]):
        """``(t, keys)`` of every tile in order: the kept ones as kept, the others drawn (sorted where
        ``sort()``), the next one's kernels started before this one's keys are read."""
        cached = {t: kept.pop(t) for t in tiles if t in kept}
        todo, pending = iter([t for t in tiles if t not in cached]), {}

        def start() -> None:
            t = next(todo, None)
            if t is not None:
                pending[t] = keys_of(t)

        start()
        for t in tiles:
            if t in cached:
                yield t, cached.pop(t)
                continue
            start()
            yield t, pending.pop(t)(sort())

    counts = np.zeros(n_pre, np.int64)
    for t, keys in each(lambda: budget[0] > 0):  # sorted while they may be kept
        if keys.nbytes <= budget[0]:
            budget[0] -= keys.nbytes
            kept[t] = keys
        sel = window(t, keys)
        counts += np.bincount((keys if sel is None else keys[sel]) // np.int32(size), minlength=n_pre)

    def place(width: int, rows_at: np.ndarray | None, *writers: Callable[[Placement], None]) -> None:
        """Call every writer with each tile's :class:`Placement` into ``(rows, width)`` arrays whose row of
        source ``i`` starts at flat position ``rows_at[i]`` (default ``i * width``)."""
        base = np.arange(n_pre, dtype=np.int64) * width if rows_at is None else np.array(rows_at, np.int64)
        for t, keys in each(lambda: True):
            drawn, sel = keys.size, window(t, keys)
            if sel is not None:
                keys = keys[sel]
            pre = keys // np.int32(size)
            c = np.bincount(pre, minlength=n_pre)
            run = np.cumsum(c) - c  # keys are sorted: source i's synapses start at run[i]
            positions = (base - run)[pre] + np.arange(keys.size)
            for write in writers:
                write(Placement(t, drawn, sel, positions, keys - pre * np.int32(size) + np.int32(t * size)))
            base += c

    def fill(out: np.ndarray) -> None:
        out[...] = n_post
        flat = out.reshape(-1)

        def write(p: Placement) -> None:
            flat[p.positions] = p.targets

        place(out.shape[1], None, write)

    return Rows(counts, fill, None, place)


KEEP_BYTES = 128 << 20  # keys of a projection's tiles kept from the count to the placement


def _target_range(targets: tuple[int, int] | None, n_post: int) -> tuple[int, int] | None:
    if targets is None:
        return None
    lo, hi = targets
    if not (0 <= lo <= hi <= n_post):
        raise ConfigurationError(f"targets must be a range (lo, hi) with 0 <= lo <= hi <= {n_post}, but are {targets!r}")
    return lo, hi


# --- fixed_probability


def _fine_bucket(w: int) -> int:
    """``w`` rounded up to a multiple of an eighth of its power of two (at most 12.5% more)."""
    k = max(0, (w - 1).bit_length() - 3)
    return -(-w // (1 << k)) * (1 << k)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _geometric_rows(key: jax.Array, rows: int, width: int, n_post: jax.Array, log_q: jax.Array, last: jax.Array):
    """``width`` further targets of ``rows`` Bernoulli rows ``(rows, width)`` int32, continuing from each
    row's ``last`` target (-1 to start): cumulative sums of geometric gaps, saturated at ``n_post``."""
    tiny = jnp.finfo(jnp.float32).tiny
    u = jax.random.uniform(key, (rows, width), jnp.float32, minval=tiny, maxval=1.0)
    cap = (n_post + 1).astype(jnp.float32)
    gaps = jnp.minimum(jnp.floor(jnp.log(u) / log_q) + 1, cap).astype(jnp.int32)
    gaps = gaps.at[:, 0].add(last)  # the first gap lands gap - 1 past the start, as the first target
    return jnp.minimum(jax.lax.associative_scan(lambda a, b: jnp.minimum(a + b, n_post), gaps, axis=1), n_post)


_TILE_MEAN = 1024  # fixed_probability: targets per tile such that a row meets about this many in each


def _fixed_probability(rule: Rule, key, n_pre, n_post, autapses, multapses, targets=None) -> Rows:
    p = rule.p
    if p == 0.0 or n_pre == 0 or n_post == 0:
        return _empty_rows(n_pre, n_post)
    if p == 1.0:
        return _all_to_all(rule, key, n_pre, n_post, autapses, multapses)
    size = max(1, min(n_post, _INT32_MAX // n_pre, 1 << math.ceil(math.log2(_TILE_MEAN / p))))
    log_q = jnp.float32(math.log1p(-p))

    def keys_of(t: int) -> Callable[[bool], np.ndarray]:
        return functools.partial(_probability_tile, t)

    def _probability_tile(t: int, sort: bool) -> np.ndarray:
        # each row of the tile: geometric gaps over its `tn` targets. Width: mean + 8 sd of the binomial row
        # length (+ slack), rounded to few shapes; a row that needs more continues with further gaps (drawn
        # from its own key), so the sample stays exact (Bernoulli trials are independent across tiles)
        t0 = t * size
        tn = min(size, n_post - t0)
        mean = tn * p
        width = _fine_bucket(int(min(tn + 1, math.ceil(mean + _WIDTH_SD * math.sqrt(mean * (1 - p)) + _WIDTH_SLACK))))
        rows_per_block = min(max(1, BLOCK // width), bucket(n_pre))
        kt, npost, out = fold(key, t), np.int32(tn), []
        for b, r0, r1 in _blocks(n_pre, rows_per_block):
            kb = fold(kt, b)
            parts = [np.asarray(_geometric_rows(kb, rows_per_block, width, npost, log_q, np.full((rows_per_block,), -1, np.int32)))]
            while parts[-1][: r1 - r0, -1].min() < tn:  # some row is not finished: draw its next gaps
                more = _geometric_rows(fold(kb, len(parts)), rows_per_block, width, npost, log_q,
                                       np.ascontiguousarray(parts[-1][:, -1]))
                parts.append(np.asarray(more))
            cols = np.concatenate(parts, axis=1)[: r1 - r0] if len(parts) > 1 else parts[0][: r1 - r0]
            if not autapses:  # row i drops target i (present at most once: rows increase) and closes the gap
                row = np.arange(r0 - t0, r1 - t0, dtype=np.int32)[:, None]
                shift = (cols >= row) & np.any(cols == row, axis=1, keepdims=True)
                cols = np.where(shift, np.concatenate([cols[:, 1:], np.full((r1 - r0, 1), tn, np.int32)], axis=1), cols)
            r, c = np.nonzero(cols < tn)
            out.append((r.astype(np.int32) + np.int32(r0)) * np.int32(size) + cols[r, c])
        return np.concatenate(out)  # row-major: sorted already

    return _tiled(n_pre, n_post, size, keys_of, _target_range(targets, n_post))


# --- fixed_total_number and fixed_indegree: targets with given in-degrees


def _skip_uniform(key: jax.Array, n: jax.Array, pivot: jax.Array, skip: jax.Array) -> jax.Array:
    """Uniform int32 on ``[0, n)`` without ``pivot`` where ``skip``: drawn from ``n - 1`` values, those
    from ``pivot`` up shifted by one, so the law stays uniform over the allowed ones."""
    x = jax.random.randint(key, pivot.shape, 0, n - skip.astype(jnp.int32), _INDEX)
    return jnp.where(skip & (x >= pivot), x + 1, x)


@functools.partial(jax.jit, static_argnums=(5,))
def _uniform_block(key: jax.Array, n: jax.Array, first: jax.Array, per: jax.Array, skip: jax.Array, size: int) -> jax.Array:
    """``(size,)`` draws of :func:`_skip_uniform`, entry ``e`` skipping ``first + e // per`` (the
    row, or the target, it belongs to)."""
    return _skip_uniform(key, n, first + jnp.arange(size, dtype=_INDEX) // per, skip)


@jax.jit
def _uniform_pivots(key: jax.Array, n: jax.Array, pivots: jax.Array, skip: jax.Array) -> jax.Array:
    """Draws of :func:`_skip_uniform` with the pivots given."""
    return _skip_uniform(key, n, pivots, skip)


def _sources(key: jax.Array, n_pre: int, local: np.ndarray, t0: int, skip: jax.Array) -> np.ndarray:
    """A uniform source for each entry of ``local`` (targets ``t0 + local``, not themselves where ``skip``),
    ``(m,)`` int32, drawn block by block from ``key``."""
    out = np.empty(local.size, np.int32)
    size = block_size(local.size)
    for b, s0, s1 in _blocks(local.size, size):
        pivots = np.zeros(size, np.int32)
        pivots[: s1 - s0] = local[s0:s1] + t0
        out[s0:s1] = np.asarray(_uniform_pivots(fold(key, b), np.int32(n_pre), pivots, skip))[: s1 - s0]
    return out


def _fixed_total_number(rule: Rule, key, n_pre, n_post, autapses, multapses, targets=None) -> Rows:
    m = rule.k
    if m and (n_pre == 0 or n_post == 0):
        raise ConfigurationError(f"fixed_total_number({m}) needs non-empty groups")
    if not multapses:
        raise ConfigurationError("fixed_total_number supports allow_multapses=True only (as drawn by NEST)")
    if m == 0:
        return _empty_rows(n_pre, n_post)
    # m uniform pairs: the targets' tiles are multinomial (drawn on the host from the key), then each
    # tile draws its synapses' targets uniformly in it (their in-degrees, counted) and a uniform source
    # for each (without autapses: from the others, so pairs stay uniform over the allowed ones)
    size = max(1, min(n_post, _INT32_MAX // n_pre, int(0.9 * BLOCK * n_post / m)))
    n_tiles = -(-n_post // size)
    seed = np.asarray(jax.random.key_data(fold(key, 0))).astype(np.uint64)
    widths = np.minimum(size, n_post - size * np.arange(n_tiles))
    per_tile = np.random.default_rng(seed.tolist()).multinomial(m, widths / n_post)
    skip = np.bool_(not autapses)

    def keys_of(t: int) -> Callable[[bool], np.ndarray]:
        kt, mt, tn = fold(key, t + 1), int(per_tile[t]), int(widths[t])
        k_local, k_pre, block = fold(kt, 0), fold(kt, 1), block_size(mt)
        spans = list(_blocks(mt, block))
        # dispatched now: the targets' draws, and the sources' where they do not depend on the targets
        local_draws = [_uniform_block(fold(k_local, b), np.int32(tn), np.int32(0), np.int32(1),
                                      np.bool_(False), block) for b, _, _ in spans]
        pre_draws = None if not autapses else [
            _uniform_block(fold(k_pre, b), np.int32(n_pre), np.int32(0), np.int32(1), skip, block)
            for b, _, _ in spans]

        def finish(sort: bool) -> np.ndarray:
            indegree = np.zeros(tn, np.int64)
            for x, (_, s0, s1) in zip(local_draws, spans):
                indegree += np.bincount(np.asarray(x)[: s1 - s0], minlength=tn)
            local = np.repeat(np.arange(tn, dtype=np.int32), indegree)
            if pre_draws is None:
                pre = _sources(k_pre, n_pre, local, t * size, skip)
            else:  # what _sources draws when no target is skipped
                pre = np.concatenate([np.asarray(x)[: s1 - s0] for x, (_, s0, s1) in zip(pre_draws, spans)]) if spans \
                    else np.zeros(0, np.int32)
            keys = pre * np.int32(size) + local
            return sorted_keys(keys, pre, n_pre) if sort else keys

        return finish

    return _tiled(n_pre, n_post, size, keys_of, _target_range(targets, n_post))


def _fixed_indegree(rule: Rule, key, n_pre, n_post, autapses, multapses, targets=None) -> Rows:
    k = rule.k
    choices = n_pre - (0 if autapses else 1)
    if k and (choices <= 0 or (not multapses and k > choices)):
        raise ConfigurationError(
            f"fixed_indegree({k}) cannot draw {k} {'distinct ' if not multapses else ''}partners from {max(choices, 0)} candidates"
        )
    if k == 0 or n_post == 0:
        return _empty_rows(n_pre, n_post)
    if k > BLOCK:
        raise ConfigurationError(f"fixed_indegree({k}): k must be at most {BLOCK}")
    # tiles of `per` targets; a tile's (source, target) keys fit an int32
    block = block_size(n_post * k)
    per = max(1, min(block // k, _INT32_MAX // max(n_pre, 1)))
    skip = np.bool_(not autapses)
    local = np.repeat(np.arange(per, dtype=np.int32), k)  # target of each entry within its tile

    def keys_of(t: int) -> Callable[[bool], np.ndarray]:
        j0, kt = t * per, fold(key, t)
        j1 = min(j0 + per, n_post)
        drawn = _uniform_block(kt, np.int32(n_pre), np.int32(j0), np.int32(k), skip, block)  # dispatched

        def finish(sort: bool) -> np.ndarray:
            pre = np.asarray(drawn)[: (j1 - j0) * k]
            keys = pre * np.int32(per) + local[: pre.size]
            if multapses:
                return sorted_keys(keys, pre, n_pre) if sort else keys
            return _distinct(sorted_keys(keys, pre, n_pre), kt, n_pre, per, j0, skip)

        return finish

    return _tiled(n_pre, n_post, per, keys_of, _target_range(targets, n_post))


@functools.lru_cache(maxsize=1)
def _bucket_keys() -> Callable | None:
    """kernels/cpu/bucket.cpp's counting sort (built on first use), or None without a C++ compiler."""
    import ctypes

    from qsn.errors import BackendUnavailableError
    from qsn.kernels.compile import NATIVE, host_library

    try:
        fn = host_library("bucket.cpp", (), False, NATIVE)[0].qsn_bucket_keys
    except BackendUnavailableError:
        return None
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int, ctypes.c_void_p]
    return fn


def sorted_keys(keys: np.ndarray, sources: np.ndarray, n_sources: int) -> np.ndarray:
    """``np.sort(keys)`` for keys ``source * per + local`` (int32) given in ascending ``local`` order, with
    ``sources`` ``(n,)`` int32 their sources: a counting sort by source (kernels/cpu/bucket.cpp, two passes)
    where a C++ compiler is available, NumPy's sort otherwise; the same array either way.

    Example:
        >>> sorted_keys(np.array([7, 2, 9], np.int32), np.array([1, 0, 1], np.int32), 2)
        array([2, 7, 9], dtype=int32)
    """
    fn = _bucket_keys()
    if fn is None or keys.size == 0:
        return np.sort(keys)
    keys, sources = np.ascontiguousarray(keys, np.int32), np.ascontiguousarray(sources, np.int32)
    out = np.empty_like(keys)
    if fn(keys.ctypes.data, sources.ctypes.data, keys.size, int(n_sources), out.ctypes.data) != 0:
        raise MemoryError("fixed_indegree: the counting sort could not allocate its bucket offsets")
    return out


def _distinct(keys: np.ndarray, key: jax.Array, n_pre: int, per: int, j0: int, skip: jax.Array) -> np.ndarray:
    """Sorted chunk keys with every repeated (source, target) pair redrawn until each target's sources
    are distinct (a uniform k-subset: the procedure treats every source alike)."""
    for attempt in range(1, 10_000):
        dup = np.flatnonzero(keys[1:] == keys[:-1]) + 1
        if dup.size == 0:
            return keys
        local = keys[dup] % per
        size = block_size(dup.size)
        for b, s0, s1 in _blocks(dup.size, size):
            targets = np.zeros(size, np.int32)
            targets[: s1 - s0] = local[s0:s1] + j0
            fresh = np.asarray(_uniform_pivots(fold(fold(key, attempt), b), np.int32(n_pre),
                                               jnp.asarray(targets), skip))
            keys[dup[s0:s1]] = fresh[: s1 - s0] * np.int32(per) + local[s0:s1]
        keys.sort()
    raise ConfigurationError("fixed_indegree: could not draw distinct partners (k too close to n_pre)")
