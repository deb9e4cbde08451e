"""Backends as objects: one small interface, a registry of loaders, and the names users pass.

A backend runs a validated :class:`qsn.driver.PopulationRun` (``qsn.simulate(..., backend=name)``)
and, when it can, a network's chunk. The core knows backends only by name and loader path: nothing
is imported until a backend is asked for, so ``import qsn`` loads no CuPy and compiles nothing. A
backend whose library, device or compiler is missing raises
:class:`qsn.errors.BackendUnavailableError` saying what is missing.

Example:
    >>> qsn.backends.names()
    ('jax', 'native', 'cupy')
    >>> qsn.backends.status()["jax"]
    'available'
    >>> qsn.backends.register("mine", "mypackage.backend:MyBackend")   # a class with the Backend methods
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, ClassVar

from qsn.errors import BackendUnavailableError, ConfigurationError

__all__ = ["Backend", "register", "get", "names", "status", "DEFAULT"]

DEFAULT = "jax"


class Backend:
    """What every backend provides. Subclass it and register the subclass by name.

    Attributes:
        name: the name users pass as ``backend=``.
        options: backend options accepted by :meth:`simulate` (through ``RunOptions.backend``).
    """

    name: ClassVar[str] = ""
    options: ClassVar[tuple[str, ...]] = ()

    def require(self) -> None:
        """Raise :class:`BackendUnavailableError` naming what is missing (library, device, compiler)."""

    def available(self) -> bool:
        """True when :meth:`require` passes."""
        try:
            self.require()
        except BackendUnavailableError:
            return False
        return True

    def check_options(self, options: dict) -> None:
        """Raise :class:`ConfigurationError` for a backend option this backend does not take."""
        for key in options:
            if key not in self.options:
                takes = f"takes {', '.join(map(repr, self.options))}" if self.options else "takes no backend options"
                raise ConfigurationError(f"Argument `{key}` is not an option of backend={self.name!r} (it {takes})")

    def simulate(self, run: Any) -> Any:
        """Run a :class:`qsn.driver.PopulationRun`; return a :class:`qsn.SimulationResult`."""
        raise ConfigurationError(f"backend={self.name!r} does not run populations")


_LOADERS: dict[str, str | Callable[[], Backend]] = {
    "jax": "qsn.jax_backend:JaxBackend",
    "native": "qsn.kernels.native:NativeBackend",
    "cupy": "qsn.kernels.backend:CupyBackend",
}
_INSTANCES: dict[str, Backend] = {}


def register(name: str, loader: str | Callable[[], Backend]) -> None:
    """Register a backend under ``name``: a ``"module:Class"`` path (imported on first use) or a factory."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"Argument `name` must be a non-empty str, but is {name!r}")
    _LOADERS[name] = loader
    _INSTANCES.pop(name, None)


def names() -> tuple[str, ...]:
    """The registered backend names."""
    return tuple(_LOADERS)


def get(name: str) -> Backend:
    """The backend registered as ``name`` (its module imported now, not before).

    Raises:
        ConfigurationError: an unknown name. BackendUnavailableError: a registered backend whose
            implementation cannot be imported here (e.g. not shipped in this version).
    """
    if name in _INSTANCES:
        return _INSTANCES[name]
    if name not in _LOADERS:
        raise ConfigurationError(f"Argument `backend` must be one of {names()}, but is {name!r}")
    loader = _LOADERS[name]
    if isinstance(loader, str):
        module, _, attr = loader.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise BackendUnavailableError(f"backend={name!r} is not available in this installation ({loader}: {err})") from err
    else:
        factory = loader
    backend = factory()
    _INSTANCES[name] = backend
    return backend


def status() -> dict[str, str]:
    """``{name: "available" | "unavailable: <what is missing>"}`` for every registered backend (``qsn info``)."""
    out = {}
    for name in names():
        try:
            get(name).require()
            out[name] = "available"
        except BackendUnavailableError as err:
            out[name] = f"unavailable: {err}"
    return out
