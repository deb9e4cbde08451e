"""JAX's persistent compilation cache for qsn's entry points, so a second process loads compiled code.

Every ``qsn`` command (and the entry points ``qsn.simulate``, ``Network.build`` and ``Network.run``)
calls :func:`enable`, which points JAX's persistent compilation cache at ``$XDG_CACHE_HOME/qsn/jax``
(default ``~/.cache/qsn/jax``) and lowers its thresholds so that qsn's compiles are written: JAX's
defaults skip anything that compiled in under a second, which is most of the small helper
computations a network build or a schedule runs (CUBA's build compiles ~40 of them: 5 s in a fresh
process without the cache, ~1 s with it). Nothing happens at ``import qsn``.

* **Opt out** with the environment variable ``QSN_COMPILE_CACHE=0`` (also ``false``, ``no``, ``off``).
* **Your own cache wins**: if ``jax.config.jax_compilation_cache_dir`` or ``JAX_COMPILATION_CACHE_DIR``
  is already set, :func:`enable` uses that directory and changes none of JAX's cache settings.
* **Size**: entries are a few kB to a few MB each and are never evicted (JAX evicts only with the
  optional ``filelock`` package and ``jax_compilation_cache_max_size``); delete the directory to
  reclaim the space. Entries are keyed by the computation, the JAX/XLA version, the device and the
  JAX flags that affect compilation, so a stale entry is never loaded for a different setup.

As JAX warns, the cache is trusted code: keep it in a directory only you can write to.

Example:
    >>> from qsn import compile_cache
    >>> path = compile_cache.enable()   # None when QSN_COMPILE_CACHE=0
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["OPT_OUT_VAR", "default_dir", "enable", "compile_counts", "entry_count", "phase"]

OPT_OUT_VAR = "QSN_COMPILE_CACHE"
_OFF = ("0", "false", "no", "off")
# Cache every compile that took at least this long (JAX's default is 1 s). A small entry loads in well
# under a millisecond, while even a tiny XLA:CPU compile costs tens of milliseconds.
_MIN_COMPILE_TIME_S = 0.0
# -1: no minimum entry size, and JAX does not raise it for the file system.
_MIN_ENTRY_SIZE_BYTES = -1

_enabled: Path | None = None  # the directory this process's enable() settled on
# Compiles that consulted the persistent cache, and those it answered, counted from JAX's monitoring
# events once enable() has registered the listener.
_counts = {"/jax/compilation_cache/compile_requests_use_cache": 0, "/jax/compilation_cache/cache_hits": 0}


def default_dir() -> Path:
    """``$XDG_CACHE_HOME/qsn/jax``, or ``~/.cache/qsn/jax`` when ``XDG_CACHE_HOME`` is unset or empty."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qsn" / "jax"


def _opted_out() -> bool:
    return os.environ.get(OPT_OUT_VAR, "").strip().lower() in _OFF


def enable(path: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache for this process; returns its directory, or None.

    Idempotent: later calls return the directory of the first. A directory configured before the
    first call (``jax.config.jax_compilation_cache_dir`` or the ``JAX_COMPILATION_CACHE_DIR``
    environment variable) is kept as it is, with the user's own thresholds.

    Args:
        path: the cache directory (default :func:`default_dir`); created if missing.

    Returns:
        The directory compiled executables are written to and read from, or ``None`` when the
        environment variable ``QSN_COMPILE_CACHE`` is ``0``/``false``/``no``/``off``.
    """
    global _enabled
    if _opted_out():
        return None
    if _enabled is not None:
        return _enabled
    import jax

    configured = jax.config.jax_compilation_cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if configured:
        target = Path(configured)
    else:
        target = Path(path).expanduser() if path is not None else default_dir()
        target.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", _MIN_COMPILE_TIME_S)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", _MIN_ENTRY_SIZE_BYTES)
        jax.config.update("jax_compilation_cache_dir", str(target))
    jax.monitoring.register_event_listener(_count)
    _enabled = target
    return _enabled


def _count(event: str, **kwargs) -> None:
    if event in _counts:
        _counts[event] += 1


def compile_counts() -> tuple[int, int]:
    """``(compiled, loaded)``: this process's compiles since :func:`enable` that missed the persistent
    cache (compiled by XLA, then written if above the thresholds) and those loaded from it."""
    requests = _counts["/jax/compilation_cache/compile_requests_use_cache"]
    hits = _counts["/jax/compilation_cache/cache_hits"]
    return requests - hits, hits


def entry_count(path: str | os.PathLike | None) -> int:
    """Number of compiled executables stored in the cache directory ``path`` (0 if None or missing)."""
    if path is None:
        return 0
    try:
        return sum(1 for name in os.listdir(path) if name.endswith("-cache"))
    except OSError:
        return 0


class _Line:
    """What :func:`phase` yields: set ``note`` inside the block to append it after the time."""

    note: str = ""


@contextmanager
def phase(label: str, *, enabled: bool = True, compiles: bool = False) -> Iterator[_Line]:
    """Write ``"label ... "`` to stderr, run the block, then its wall time on the same line.

    ``with phase("building cuba") as line: ...; line.note = "321,000 synapses"`` writes
    ``building cuba ... 3.1 s, 321,000 synapses``. With ``compiles=True`` the line also says how many
    compiles the block ran and how many it loaded from the persistent cache instead. A block that
    raises ends its line with ``failed`` so that the error message starts on a line of its own.
    """
    line = _Line()
    if not enabled:
        yield line
        return
    before = compile_counts()
    sys.stderr.write(f"{label} ... ")
    sys.stderr.flush()
    start = time.perf_counter()
    try:
        yield line
    except BaseException:
        sys.stderr.write("failed\n")
        sys.stderr.flush()
        raise
    notes = [line.note] if line.note else []
    if compiles:
        compiled, loaded = (now - then for now, then in zip(compile_counts(), before))
        if _enabled is None:
            notes.append("compile cache off")
        elif compiled:
            notes.append(f"{compiled} compiled and cached for next time, {loaded} loaded from the cache")
        else:
            notes.append(f"{loaded} loaded from the compile cache")
    sys.stderr.write(f"{time.perf_counter() - start:.1f} s{''.join(', ' + n for n in notes)}\n")
    sys.stderr.flush()
