"""The optional libraries of :mod:`qsn.interop` (nir, neo, pynwb), imported when first asked for.

``import qsn.interop`` imports none of them; each exporter calls :func:`require` on entry, so a missing
library raises before any work, with the command that installs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from qsn.errors import BackendUnavailableError

__all__ = ["require", "PACKAGES"]

# module name -> (PyPI name, what it is for); the `interop` extra of pyproject.toml installs all three
PACKAGES = {
    "nir": ("nir", "NIR graphs (qsn.interop.to_nir, from_nir)"),
    "neo": ("neo", "Neo blocks of spike trains and signals (qsn.interop.to_neo)"),
    "pynwb": ("pynwb", "NWB files (qsn.interop.to_nwb)"),
}


def require(module: str) -> ModuleType:
    """Import and return ``module`` (one of :data:`PACKAGES`).

    Raises:
        BackendUnavailableError: (an ``ImportError``) the library is not installed; the message names it,
            what needs it and how to install it.

    Example:
        >>> nir = require("nir")
    """
    if module not in PACKAGES:
        raise KeyError(f"require: {module!r} is not one of qsn.interop's optional libraries {sorted(PACKAGES)}")
    pypi, purpose = PACKAGES[module]
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise BackendUnavailableError(
            f"{pypi} is not installed; it is needed for {purpose}. Install it with "
            f"pip install 'qsn[interop]' (or pip install {pypi})"
        ) from err
