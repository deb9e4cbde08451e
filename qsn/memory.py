"""Memory preflight: estimate what a state, buffer or connectivity will take and refuse it before allocating.

Every allocation that grows with a user's size (``init_state(n=...)``, a network's neuron states,
ring buffers and synapse arrays) is estimated first and compared with the memory free where the
arrays will live:

* **device** — ``jax.devices()[0].memory_stats()``: ``bytes_limit - bytes_in_use`` (GPUs);
* **host** — where the device reports no statistics (the CPU backend): the kernel's
  ``MemAvailable`` (``/proc/meminfo``), else ``os.sysconf`` available pages, capped by a cgroup
  memory limit when the process runs in one.

Only a share of the free memory is offered: 80% on the host (the system, the Python process and
other programs need the rest; running a host out of memory ends in the kernel's OOM killer, not in
an exception) and 90% on a device (XLA's scratch space for compiled steps).

A size that does not fit raises :class:`qsn.errors.MemoryBudgetError` (a ``MemoryError``) with the
estimate, the memory available and the largest size that fits, e.g.
``init_state(n=10000000000) needs 223.5 GiB for 6 (n,) float32/int32 arrays, more than the 18.3 GiB
of host memory it may take (80% of the 22.9 GiB free); at most n = 810,000,000 fits``, instead of a raw
``RESOURCE_EXHAUSTED`` traceback from XLA (or the kernel's OOM killer) minutes later.

Estimates count the arrays that are alive at the peak of the operation, not XLA's scratch space
inside a compiled step, so a size just under the limit can still fail later; a size over it
never fits.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, NamedTuple

import jax

from qsn.errors import MemoryBudgetError

__all__ = ["Budget", "available_bytes", "host_available_bytes", "format_bytes", "largest_fit", "check_bytes"]

HOST_SHARE = 0.8  # share of the free host memory a preflight offers
DEVICE_SHARE = 0.9  # share of a device's free memory

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def format_bytes(nbytes: float) -> str:
    """``nbytes`` as a short binary-prefixed string, e.g. ``format_bytes(3 * 2**30) == "3.0 GiB"``."""
    nbytes = float(nbytes)
    k = 0
    while abs(nbytes) >= 1024 and k < len(_UNITS) - 1:
        nbytes /= 1024
        k += 1
    return f"{int(nbytes)} B" if k == 0 else f"{nbytes:.1f} {_UNITS[k]}"


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def host_available_bytes() -> int:
    """Bytes of host memory a new allocation can take now (see the module docstring)."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None:
        try:
            avail = int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):  # not POSIX: assume 8 GiB
            avail = 8 * 2**30
    for limit_path, usage_path in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
    ):
        limit, usage = _read_int(limit_path), _read_int(usage_path)
        if limit is not None and usage is not None and limit < 2**60:
            avail = min(avail, max(limit - usage, 0))
    return avail


def _default_device() -> Any:
    dev = jax.config.jax_default_device
    return dev if isinstance(dev, jax.Device) else jax.devices()[0]


def available_bytes(device: Any = None) -> tuple[int, int, str]:
    """``(usable, free, where)``: bytes a preflight offers on ``device`` (default: JAX's default device),
    the bytes free there, and the memory in words (``"host memory"``, ``"memory of gpu:0"``).

    Devices without memory statistics (the CPU backend) report the host's figure; ``usable`` is
    :data:`HOST_SHARE` or :data:`DEVICE_SHARE` of ``free``.

    Example:
        >>> usable, free, where = available_bytes()
    """
    dev = _default_device() if device is None else device
    stats = None
    try:
        stats = dev.memory_stats()
    except Exception:  # noqa: BLE001  (backends without statistics raise various errors)
        stats = None
    if stats and "bytes_limit" in stats:
        free = max(int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)), 0)
        return int(free * DEVICE_SHARE), free, f"memory of {dev.platform}:{dev.id}"
    free = host_available_bytes()
    return int(free * HOST_SHARE), free, "host memory"


def largest_fit(nbytes: float, per_unit: float, fixed: float = 0.0) -> int:
    """The largest size ``s`` with ``fixed + s * per_unit <= nbytes``, rounded down to two significant
    digits (a size to suggest, not a bound to the byte); 0 when nothing fits.

    Example:
        >>> largest_fit(10 * 2**30, 24)
        440000000
    """
    if per_unit <= 0:
        return 0
    s = int((nbytes - fixed) // per_unit)
    if s < 100:
        return max(s, 0)
    scale = 10 ** (len(str(s)) - 2)
    return s // scale * scale


class _Item(NamedTuple):
    what: str  # what the bytes are for, e.g. "the ring buffers of group 'g' (2 x 101 x 1,000, float32)"
    nbytes: int
    hint: Callable[[int], str] | None  # bytes this item may take -> "at most n = ... fits"


class Budget:
    """An estimate made of named parts, checked at once against the memory available.

    Args:
        owner: the call being sized, as the message should start, e.g. ``"Network.build"``.

    Example:
        >>> b = Budget("init_state(n=1000)")
        >>> b.add("6 (n,) float32/int32 arrays", 24 * 1000, hint=lambda free: f"at most n = {free // 24:,} fits")
        >>> b.check()  # raises MemoryBudgetError when 24 kB are not free
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.items: list[_Item] = []

    def add(self, what: str, nbytes: float, *, hint: Callable[[int], str] | None = None) -> None:
        """Add ``nbytes`` (rounded up) for ``what``; ``hint(free)`` says what fits in ``free`` bytes."""
        if nbytes > 0:
            self.items.append(_Item(what, int(math.ceil(nbytes)), hint))

    @property
    def total(self) -> int:
        """Bytes of every part together."""
        return sum(item.nbytes for item in self.items)

    def check(self, device: Any = None) -> None:
        """Raise :class:`MemoryBudgetError` when :attr:`total` exceeds the memory a preflight may take on
        ``device`` (:func:`available_bytes`).

        The message gives the total, the memory available, the largest parts (at most three) and, from
        the largest part's hint, the largest size of that part that fits with the others unchanged.
        """
        available, free, where = available_bytes(device)
        need = self.total
        if need <= available:
            return
        share = available / max(free, 1)
        room = f"{format_bytes(available)} of {where} it may take ({share:.0%} of the {format_bytes(free)} free)"
        items = sorted(self.items, key=lambda item: -item.nbytes)
        if len(items) == 1:
            msg = f"{self.owner} needs {format_bytes(need)} for {items[0].what}, more than the {room}"
        else:
            parts = ", ".join(f"{format_bytes(item.nbytes)} for {item.what}" for item in items[:3])
            more = f" and {len(items) - 3} smaller parts" if len(items) > 3 else ""
            msg = f"{self.owner} needs {format_bytes(need)}, more than the {room}: {parts}{more}"
        top = items[0]
        if top.hint is not None:
            msg += f"; {top.hint(max(available - (need - top.nbytes), 0))}"
        raise MemoryBudgetError(msg)


def check_bytes(
    owner: str, what: str, nbytes: float, *, hint: Callable[[int], str] | None = None, device: Any = None
) -> None:
    """One-part :class:`Budget`: raise :class:`MemoryBudgetError` unless ``nbytes`` fit on ``device``.

    Example:
        >>> check_bytes("init_state(n=1000)", "6 (n,) arrays", 24_000)
    """
    budget = Budget(owner)
    budget.add(what, nbytes, hint=hint)
    budget.check(device)
