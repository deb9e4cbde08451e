"""Discrete hyperparameter spaces: ordered values per parameter, one-hot bits, value indices and a radix index.

Used by :mod:`qsn.learning.search` (annealing-guided and random search) and :mod:`qsn.learning.quadratic`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from qsn.errors import ConfigurationError, InvalidInputError

__all__ = ["SearchSpace"]


class SearchSpace:
    """Ordered discrete hyperparameters: ``{name: [value, ...]}``, values compared with ``==``.

    Values may be numbers (``inf`` allowed, e.g. ``t2 = inf`` for no dephasing; NaN never, it equals nothing),
    strings or any other objects; within a parameter they must be distinct.

    Attributes: ``names`` (K,), ``values`` (K tuples), ``sizes`` (K,) ``n_k``, ``offsets`` (K,) ``o_k``,
    ``n_bits`` ``D``, ``size`` the number of configurations ``prod_k n_k``.

    Example:
        >>> s = SearchSpace({"lr": [1e-3, 1e-2], "hidden": [32, 64, 128]})
        >>> s.encode({"lr": 1e-2, "hidden": 32}).tolist(), s.size
        ([0, 1, 1, 0, 0], 6)
    """

    def __init__(self, params: Mapping[str, Sequence[Any]]):
        if not isinstance(params, Mapping) or not params:
            raise ConfigurationError(f"Argument `params` must be a non-empty mapping name -> values, but is {params!r}")
        names, values = [], []
        for name, vals in params.items():
            if not isinstance(name, str):
                raise ConfigurationError(f"Argument `params` must have str names, but has {name!r}")
            if isinstance(vals, (str, bytes)) or not isinstance(vals, Sequence) or len(vals) == 0:
                raise ConfigurationError(f"Argument `params[{name!r}]` must be a non-empty list of values, but is {vals!r}")
            for i, v in enumerate(vals):
                if isinstance(v, (float, np.floating)) and math.isnan(v):
                    raise ConfigurationError(f"Argument `params[{name!r}]` must hold no NaN, but entry {i} is NaN")
                if any(v == w for w in vals[:i]):
                    raise ConfigurationError(f"Argument `params[{name!r}]` must hold distinct values, but repeats {v!r}")
            names.append(name)
            values.append(tuple(vals))
        self.names: tuple[str, ...] = tuple(names)
        self.values: tuple[tuple[Any, ...], ...] = tuple(values)
        self.sizes = np.array([len(v) for v in values], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        self.n_bits = int(self.sizes.sum())
        self.size = math.prod(int(n) for n in self.sizes)  # a Python int: exact for any space
        self._block = np.repeat(np.arange(len(names)), self.sizes)  # (D,) parameter of each bit

    def __repr__(self) -> str:
        return f"SearchSpace({dict(zip(self.names, map(list, self.values)))!r})"

    def codes(self, config: Mapping[str, Any]) -> np.ndarray:
        """Value indices (K,) int64 of ``config`` (a dict with exactly the space's names)."""
        if not isinstance(config, Mapping) or set(config) != set(self.names):
            got = sorted(config) if isinstance(config, Mapping) else type(config).__name__
            raise InvalidInputError(f"Argument `config` must have the keys {list(self.names)}, but has {got}")
        out = np.empty(len(self.names), dtype=np.int64)
        for k, (name, vals) in enumerate(zip(self.names, self.values)):
            hit = [i for i, v in enumerate(vals) if v == config[name]]
            if not hit:
                raise InvalidInputError(f"Argument `config[{name!r}]` must be one of {list(vals)}, but is {config[name]!r}")
            out[k] = hit[0]
        return out

    def from_codes(self, codes: Sequence[int]) -> dict[str, Any]:
        """The configuration with value indices ``codes`` (K,)."""
        return {name: vals[int(c)] for name, vals, c in zip(self.names, self.values, codes)}

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        """One-hot bits (D,) uint8 of ``config``."""
        return self.one_hot(self.codes(config))

    def one_hot(self, codes: Any) -> np.ndarray:
        """One-hot bits (..., D) uint8 of value indices ``codes`` (..., K)."""
        codes = np.asarray(codes)
        return np.concatenate([np.eye(n, dtype=np.uint8)[codes[..., k]] for k, n in enumerate(self.sizes)], axis=-1)

    def decode(self, x: Any) -> dict[str, Any]:
        """The configuration of one-hot bits ``x`` (D,); raises InvalidInputError unless every block has one 1."""
        x = np.asarray(x)
        if x.shape != (self.n_bits,) or not np.all((x == 0) | (x == 1)):
            raise InvalidInputError(f"Argument `x` must be (D,) = ({self.n_bits},) bits in {{0, 1}}, but is {x!r}")
        counts = np.bincount(self._block, weights=x, minlength=len(self.names))
        if np.any(counts != 1):
            k = int(np.argmax(counts != 1))
            raise InvalidInputError(f"Argument `x` must be one-hot in every block, but block {self.names[k]!r} has "
                                    f"{int(counts[k])} ones")
        return self.from_codes(np.flatnonzero(x) - self.offsets)

    def index(self, config: Mapping[str, Any]) -> int:
        """Mixed-radix index in ``[0, size)`` (first parameter most significant)."""
        return self._radix(self.codes(config))

    def _radix(self, codes: Sequence[int]) -> int:
        out = 0
        for c, n in zip(codes, self.sizes):
            out = out * int(n) + int(c)
        return out

    def config(self, index: int) -> dict[str, Any]:
        """Inverse of :meth:`index`."""
        if not 0 <= index < self.size:
            raise InvalidInputError(f"Argument `index` must be in [0, {self.size}), but is {index}")
        codes = []
        for n in self.sizes[::-1]:
            index, c = divmod(int(index), int(n))
            codes.append(c)
        return self.from_codes(codes[::-1])

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """One configuration drawn uniformly (each parameter's value uniformly and independently)."""
        return self.from_codes(rng.integers(0, self.sizes))

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Bit pairs ``(i, j)``, ``i < j`` in different parameters, the surrogate's couplings: two (P,) int64."""
        i, j = np.triu_indices(self.n_bits, 1)
        keep = self._block[i] != self._block[j]
        return i[keep], j[keep]
