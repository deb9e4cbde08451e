"""Pieces shared by every run loop (``qsn.simulate``, ``qsn.networks.Network.run``): the progress bar
and the check for non-finite values between chunks."""

from __future__ import annotations

import sys
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from qsn.errors import NumericalInstabilityError

__all__ = ["check_finite", "progress_bar", "json_safe"]


def check_finite(fields: Mapping[str, Any], step: int, owner: str = "State field", *, first_neuron: int = 0) -> None:
    """Raise ``NumericalInstabilityError`` naming the field and neuron (last axis) of the first
    non-finite value among the floating-point arrays of ``fields``; ``first_neuron``: the index of the
    arrays' first neuron in the whole population (a partitioned device's slice)."""
    for field, arr in fields.items():
        if jnp.issubdtype(arr.dtype, jnp.floating):
            finite = np.isfinite(np.asarray(arr))
            if not finite.all():
                neuron = first_neuron + int(np.argwhere(~finite)[0][-1])
                raise NumericalInstabilityError(f"{owner} `{field}` became non-finite at neuron {neuron} by step {step}")


class _NoBar:
    def update(self, k: int) -> None:
        pass

    def set_postfix(self, **values: Any) -> None:
        pass

    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "step"):
    """A tqdm bar on stderr counting ``unit`` items, or a no-op when not ``enabled``; both are context managers."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True)


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, ±inf) replaced by None, recursively, so ``json.dumps``
    writes strict JSON (``null``) instead of the bare ``NaN``/``Infinity`` tokens parsers reject."""
    if isinstance(obj, float) or isinstance(obj, np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
