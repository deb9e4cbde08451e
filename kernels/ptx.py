"""Static analysis of the kernels with the CUDA toolkit's ``nvcc`` (no GPU needed): registers and
spills per thread from ``ptxas -v``, and the instruction mix of the time-step loop read from the PTX.

This is how machines without a GPU still derive what one neuron-step costs: FP32 operations, SFU
(special-function unit) operations and memory accesses per step, hence a throughput bound per chip
(:func:`bound`). PTX is the virtual ISA; ``ptxas`` may still reschedule or fuse, so counts are those
of the PTX, stated as such.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from qsn.errors import BackendUnavailableError
from qsn.kernels.compile import Defines, nvrtc_options, source

__all__ = ["nvcc", "compile_stats", "loop_blocks", "per_step", "bound", "HOPPER_H100_SXM"]

# Per-SM, per-clock throughputs of compute capability 9.0 (CUDA C++ Programming Guide, "Arithmetic
# Instructions" throughput table): 128 FP32 add/mul/FMA, 16 SFU ops (rsqrt, sin, cos, ex2, lg2, rcp),
# 4 schedulers issuing one warp instruction each = 128 thread instructions. H100 SXM5: 132 SMs,
# 1.98 GHz boost clock, 3.35 TB/s HBM3 (NVIDIA H100 datasheet).
HOPPER_H100_SXM = {"sms": 132, "clock_hz": 1.98e9, "fp32_per_clk": 128, "sfu_per_clk": 16, "issue_per_clk": 128,
                   "hbm_bytes_per_s": 3.35e12}

_SFU = re.compile(r"^(sin|cos|rsqrt|ex2|lg2|rcp|sqrt|tanh)\.approx")
_FP32 = re.compile(r"^(add|sub|mul|fma|neg|abs|min|max)(\.[a-z]+)*\.f32")


def nvcc() -> str | None:
    """Path of ``nvcc`` (``$PATH`` or ``/usr/local/cuda/bin``), or None."""
    return shutil.which("nvcc") or (shutil.which("nvcc", path="/usr/local/cuda/bin"))


def compile_stats(name: str, defines: Defines, precise: bool, arch: str = "sm_90") -> dict:
    """Build kernel source ``name`` with ``nvcc`` for ``arch`` using the NVRTC flags of
    :func:`qsn.kernels.compile.nvrtc_options`; return ``registers``, ``spill_stores``,
    ``spill_loads`` (bytes), ``stack`` (bytes) and the ``ptx`` text.

    Raises:
        BackendUnavailableError: no ``nvcc``, or the build failed (compiler output included).
    """
    exe = nvcc()
    if exe is None:
        raise BackendUnavailableError("static kernel analysis needs the CUDA toolkit's nvcc")
    flags = [f.replace("-use_fast_math", "--use_fast_math") for f in nvrtc_options(defines, precise)]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"{name}.cu"
        src.write_text(source(name))
        # one build: the cubin gives ptxas's resource report, --keep leaves the PTX it was made from
        proc = subprocess.run([exe, f"-arch={arch}", "-cubin", *flags, "-Xptxas", "-v", "--keep", "--keep-dir", tmp,
                               str(src), "-o", str(Path(tmp) / f"{name}.cubin")], capture_output=True, text=True)
        if proc.returncode != 0:
            raise BackendUnavailableError(f"nvcc failed on kernel {name!r}:\n{proc.stderr[-4000:]}")
        ptx_text = (Path(tmp) / f"{name}.ptx").read_text()
    log = proc.stderr
    number = lambda pattern: int(m.group(1)) if (m := re.search(pattern, log)) else 0  # noqa: E731
    return {
        "registers": number(r"Used (\d+) registers"),
        "spill_stores": number(r"(\d+) bytes spill stores"),
        "spill_loads": number(r"(\d+) bytes spill loads"),
        "stack": number(r"(\d+) bytes stack frame"),
        "ptx": ptx_text,
    }


def _classify(op: str) -> tuple[str, ...]:
    """Counters an instruction adds to (``mov``/``neg`` are free: ptxas folds them into operands)."""
    if op.startswith(("mov.", "neg.")):
        return ()
    if _SFU.match(op):
        return ("instructions", "sfu")
    if _FP32.match(op):
        return ("instructions", "fp32") + (("fma",) if op.startswith("fma") else ())
    if op.startswith("ld.global"):
        return ("instructions", "loads")
    if op.startswith("st.global"):
        return ("instructions", "stores")
    if op.startswith(("atom", "red")):
        return ("instructions", "atomics")
    return ("instructions",)


def loop_blocks(ptx: str) -> dict[str, dict]:
    """Instruction mix of the widest loop in ``ptx`` (the kernels' time-step loop), per kind of basic
    block: blocks tagged ``QSN_MARK(name)`` in the source (built with ``-DQSN_ANALYSIS=1``) under their
    name, every other block of the loop under ``"always"``. Each mix counts ``instructions``, ``fp32``,
    ``fma``, ``sfu``, ``loads``, ``stores`` and ``atomics``; ``flops`` = fp32 + fma."""
    lines = [line.strip() for line in ptx.splitlines()]
    labels = {line[:-1]: i for i, line in enumerate(lines) if re.match(r"^\$L__\w+:$", line)}
    best = None
    for i, line in enumerate(lines):
        m = re.search(r"\bbra(\.uni)?\s+(\$L__\w+);", line)
        if m and m.group(2) in labels and labels[m.group(2)] < i:
            span = (labels[m.group(2)], i)
            if best is None or span[1] - span[0] > best[1] - best[0]:
                best = span
    if best is None:
        raise ValueError("no loop found in the PTX")
    blocks: list[tuple[str, Counter]] = []
    name, mix = "always", Counter()
    for line in lines[best[0] : best[1] + 1]:
        tag = re.search(r"// qsn-block (\w+);", line)
        if tag:  # the tag names the rest of its basic block (what precedes it may run more or less often)
            if mix:
                blocks.append((name, mix))
                mix = Counter()
            name = tag.group(1)
            continue
        if not line or line.startswith(("//", "{", "}", ".")) or line.startswith("$"):
            if line.startswith("$") and mix:  # a label starts a new basic block
                blocks.append((name, mix))
                name, mix = "always", Counter()
            continue
        op = line.split()[1] if line.startswith("@") else line.split()[0]
        for key in _classify(op):
            mix[key] += 1
        if "bra" in op:  # a branch ends its basic block
            blocks.append((name, mix))
            name, mix = "always", Counter()
    if mix:
        blocks.append((name, mix))
    out: dict[str, Counter] = {}
    for block_name, block_mix in blocks:
        out.setdefault(block_name, Counter()).update(block_mix)
    for counts in out.values():
        counts["flops"] = counts["fp32"] + counts["fma"]
    return {k: dict(v) for k, v in out.items()}


def per_step(blocks: dict[str, dict], weights: dict[str, float], steps_per_iteration: int = 1) -> dict:
    """Expected mix of one step: each block kind times its executions per loop iteration (``weights``;
    ``"always"`` is 1 unless given; a kind missing from ``weights`` is an error, so no block is silently
    dropped), divided by the steps one iteration advances."""
    missing = set(blocks) - set(weights) - {"always"}
    if missing:
        raise ValueError(f"no execution weight for block(s) {sorted(missing)}")
    total: Counter = Counter()
    for name, mix in blocks.items():
        w = weights.get(name, 1.0)
        for key, value in mix.items():
            total[key] += w * value / steps_per_iteration
    return dict(total)


def bound(mix: dict, chip: dict = HOPPER_H100_SXM) -> dict:
    """Neuron-steps/s the instruction mix allows on ``chip``: the issue, FP32 and SFU limits and the
    smallest of them (``bound``), in neuron-steps per second."""
    per_sm = chip["sms"] * chip["clock_hz"]
    limits = {
        "issue": per_sm * chip["issue_per_clk"] / max(mix.get("instructions", 1), 1),
        "fp32": per_sm * chip["fp32_per_clk"] / max(mix.get("fp32", 0), 1),
        "sfu": per_sm * chip["sfu_per_clk"] / mix["sfu"] if mix.get("sfu") else float("inf"),
    }
    limits["bound"] = min(limits.values())
    limits["limited_by"] = min((k for k in ("issue", "fp32", "sfu")), key=lambda k: limits[k])
    return limits
