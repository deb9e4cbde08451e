"""qsn.compile_cache: JAX's persistent compilation cache for qsn's entry points.

JAX reads its cache settings once per process, so everything that enables the cache runs in a fresh
subprocess with its own ``XDG_CACHE_HOME`` (under ``tmp_path``):

* a second process running the same jitted ``qsn.simulate`` loads every executable the first one
  compiled, and compiles nothing; ``enable`` is idempotent (same directory, events counted once);
* ``QSN_COMPILE_CACHE=0`` leaves the cache directory absent; a directory the user configured
  (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is kept, with the user's thresholds;
* the ``qsn`` command says so on stderr: compiled and cached the first time, loaded the second;
* ``default_dir`` follows ``XDG_CACHE_HOME``; ``phase`` writes one line, ``failed`` on an error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qsn import compile_cache

# Runs a small simulation after compile_cache.enable() and prints what the cache saw, as JSON.
SCRIPT = """
import json, os, sys, time
import jax, jax.numpy as jnp
if sys.argv[1:] == ["config"]:  # the user points JAX at their own cache before qsn runs
    jax.config.update("jax_compilation_cache_dir", os.environ["USER_DIR"])
import qsn
from qsn import compile_cache
path = compile_cache.enable()
assert compile_cache.enable() == path  # idempotent
p = qsn.NeuronParams(delta=0.3, t2=50.0)
s = qsn.init_state(p, 64, mode="mixed")
start = time.perf_counter()
r = qsn.simulate(p, s, jnp.linspace(10.0, 30.0, 64), steps=200, record=("p1",), neurons=[0, 63])
jax.block_until_ready(r.state)
compiled, loaded = compile_cache.compile_counts()
print(json.dumps({
    "path": None if path is None else str(path), "compiled": compiled, "loaded": loaded,
    "seconds": time.perf_counter() - start, "entries": compile_cache.entry_count(path),
    "min_time": jax.config.jax_persistent_cache_min_compile_time_secs,
}))
"""


def _env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "QSN_COMPILE", "XLA_FLAGS"))}
    env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), JAX_PLATFORMS="cpu", **extra)
    return env


def _run(tmp_path: Path, *args: str, **extra: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *args], env=_env(tmp_path, **extra), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_second_process_loads_what_the_first_compiled(tmp_path):
    cache = tmp_path / "xdg" / "qsn" / "jax"
    first = _run(tmp_path)
    assert first["path"] == str(cache)
    assert first["compiled"] > 0 and first["loaded"] == 0
    # thresholds at zero: every compile is written, and each counted once despite two enable() calls
    assert first["entries"] == first["compiled"]
    second = _run(tmp_path)
    assert second["compiled"] == 0 and second["loaded"] == first["compiled"], (first, second)
    assert second["entries"] == first["entries"]


def test_opt_out_leaves_no_cache(tmp_path):
    out = _run(tmp_path, QSN_COMPILE_CACHE="0")
    assert out["path"] is None and out["compiled"] == 0
    assert not (tmp_path / "xdg").exists()


@pytest.mark.parametrize("how", ["env", "config"])
def test_a_directory_the_user_configured_is_kept(tmp_path, how):
    mine = tmp_path / "mine"
    extra = {"JAX_COMPILATION_CACHE_DIR": str(mine)} if how == "env" else {"USER_DIR": str(mine)}
    # the user's own threshold (not qsn's 0) stays in force
    out = _run(tmp_path, *(["config"] if how == "config" else []),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.0001", **extra)
    assert out["path"] == str(mine)
    assert out["min_time"] == 0.0001
    assert compile_cache.entry_count(mine) > 0
    assert not (tmp_path / "xdg").exists()


def test_cli_reports_compiled_then_loaded(tmp_path):
    cmd = [sys.executable, "-m", "qsn", "simulate", "-n", "100", "--duration", "10", "--mode", "pure"]
    lines = []
    for _ in range(2):
        proc = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        lines.append(next(line for line in proc.stderr.splitlines() if line.startswith("compiling")))
    assert "compiled and cached for next time" in lines[0]
    assert lines[1].endswith("loaded from the compile cache") and " 0 loaded" not in lines[1]


def test_default_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache.default_dir() == tmp_path / "qsn" / "jax"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compile_cache.default_dir() == tmp_path / "home" / ".cache" / "qsn" / "jax"


def test_phase_writes_one_line(capsys):
    with compile_cache.phase("building x") as line:
        line.note = "12 synapses"
    err = capsys.readouterr().err
    assert err.startswith("building x ... ") and err.endswith(" s, 12 synapses\n") and err.count("\n") == 1
    with compile_cache.phase("quiet", enabled=False):
        pass
    assert capsys.readouterr().err == ""
    with pytest.raises(KeyError), compile_cache.phase("failing"):
        raise KeyError("x")
    assert capsys.readouterr().err == "failing ... failed\n"


def test_entry_count_of_nothing_is_zero(tmp_path):
    assert compile_cache.entry_count(None) == 0
    assert compile_cache.entry_count(tmp_path / "missing") == 0
    (tmp_path / "jit_f-abc-cache").write_bytes(b"x")
    (tmp_path / "jit_f-abc-atime").write_bytes(b"x")
    assert compile_cache.entry_count(tmp_path) == 1


# Builds a small network without calling enable(): Network.build turns the cache on by itself.
BUILD_SCRIPT = """
import json
import jax
from qsn import compile_cache
from qsn.networks import models
net = models.cuba(200).build(jax.random.key(0))
compiled, loaded = compile_cache.compile_counts()
print(json.dumps({"compiled": compiled, "loaded": loaded}))
"""


def test_a_network_build_uses_the_cache_without_being_asked(tmp_path):
    def build() -> dict:
        proc = subprocess.run([sys.executable, "-c", BUILD_SCRIPT], env=_env(tmp_path), capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    first = build()
    assert first["compiled"] > 0 and first["loaded"] == 0, first
    second = build()
    assert second["compiled"] == 0 and second["loaded"] == first["compiled"], (first, second)
