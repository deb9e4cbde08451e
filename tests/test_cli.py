"""The `qsn` command: parser, demo output, JSON, exit codes, progress lines, bad inputs.

In-process calls of ``main`` run with ``QSN_COMPILE_CACHE=0`` (the autouse fixture below), so the
suite's process keeps JAX's default cache settings and writes nothing under ``~/.cache``; the cache
itself is tested in subprocesses in ``tests/test_compile_cache.py``.
"""

import json
import shutil
import subprocess
import sys

import jax
import pytest

from qsn.cli import build_parser, main
from qsn.errors import MemoryBudgetError


@pytest.fixture(autouse=True)
def _no_compile_cache(monkeypatch):
    monkeypatch.setenv("QSN_COMPILE_CACHE", "0")


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_demo_writes_figure_and_table(tmp_path, capsys):
    out = tmp_path / "demo.png"
    code = main(["demo", "-n", "2000", "--duration", "100", "--out", str(out), "--no-progress"])
    assert code == 0
    assert out.stat().st_size > 10_000  # a real figure, not an empty file
    text = capsys.readouterr().out
    for label in ("firing rate", "<p_excited>", "<|rho01|>", "<entropy>", "throughput"):
        assert label in text


def test_simulate_json_has_physical_summary(capsys):
    code = main(["simulate", "-n", "500", "--duration", "200", "--mode", "pure", "--t2", "inf", "--json",
                 "--no-progress"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["neurons"] == 500 and summary["steps"] == 2000
    # Inputs 10..40 mV straddle the 15 mV threshold: some neurons idle, some fire.
    assert 0.0 < summary["fraction_active"] < 1.0
    assert summary["entropy_mean_bits"] == pytest.approx(0.0, abs=1e-5)  # pure states
    assert summary["rate_max_hz"] > summary["rate_median_hz"] > 0


@pytest.mark.skipif(shutil.which("g++") is None, reason="the native backend needs a C++ compiler")
def test_simulate_backend_native_matches_the_jax_summary(capsys):
    argv = ["simulate", "-n", "500", "--duration", "100", "--json", "--no-progress"]
    assert main(argv) == 0
    ref = json.loads(capsys.readouterr().out)
    assert main(argv + ["--backend", "native"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["device"] == "backend='native'" and ref["device"] != out["device"]
    for field in ("rate_mean_hz", "rate_max_hz", "fraction_active"):  # same spikes
        assert out[field] == ref[field], field
    for field in ("p_excited_mean", "coherence_mean", "entropy_mean_bits"):  # same physics, float32 rounding
        assert out[field] == pytest.approx(ref[field], abs=1e-4), field


def test_qsn_error_gives_exit_code_1(capsys):
    # t2 > 2*t1 is unphysical: the CLI reports the ConfigurationError, no traceback.
    code = main(["simulate", "-n", "10", "--duration", "1", "--t2", "100", "--t1", "10", "--no-progress"])
    assert code == 1
    assert "t2 must be <= 2*t1" in capsys.readouterr().err


def test_bad_arguments_exit_2():
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["demo", "--mode", "quantum"])
    assert exc.value.code == 2


def _cupy_sees_a_gpu() -> bool:
    """Independent of qsn.kernels: CuPy imports and counts at least one CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver, no device
        return False


def test_info_and_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "qsn", "info"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    info = json.loads(proc.stdout)
    assert info["cupy_backend"] is _cupy_sees_a_gpu()
    assert info["backends"]["jax"] == "available"
    assert (info["backends"]["cupy"] == "available") is _cupy_sees_a_gpu()
    assert info["devices"] == [str(d) for d in jax.devices()]
    helptext = subprocess.run([sys.executable, "-m", "qsn", "--help"], capture_output=True, text=True, timeout=120)
    assert "demo" in helptext.stdout and "simulate" in helptext.stdout


# ---------------------------------------------------------------- progress lines on stderr

def test_simulate_prints_the_compile_line_on_stderr(capsys):
    assert main(["simulate", "-n", "100", "--duration", "10", "--mode", "pure"]) == 0
    captured = capsys.readouterr()
    assert "compiling and running a first chunk of 1 steps ... " in captured.err
    assert "compile cache off" in captured.err  # the fixture's QSN_COMPILE_CACHE=0
    assert "compiling" not in captured.out


def test_network_progress_lines_and_quiet_json(capsys):
    args = ["network", "cuba", "-n", "200", "--duration", "20"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "building cuba: 200 neurons ... " in captured.err and " synapses" in captured.err
    assert "compiling and running the first 2 of 200 steps ... " in captured.err
    assert captured.out.startswith("cuba: ")
    assert main([*args, "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["model"] == "cuba" and summary["populations"]["neurons"]["neurons"] == 200
    assert "building" not in captured.err and "compiling" not in captured.err


# ---------------------------------------------------------------- bad inputs: one line, before any work

@pytest.fixture
def no_run(monkeypatch):
    """Fail the test if the demo would start simulating."""
    def boom(*args, **kwargs):
        raise AssertionError("run_demo was called")

    monkeypatch.setattr("qsn.demo.run_demo", boom)


@pytest.mark.parametrize("out, says", [
    ("/nonexistent/x.png", "'/nonexistent' does not exist"),
    ("{tmp}", "is a directory"),
    ("{tmp}/figure.docx", "must end in one of"),
])
def test_demo_out_is_checked_before_running(no_run, tmp_path, capsys, out, says):
    code = main(["demo", "-n", "100", "--duration", "1", "--no-progress", "--out", out.format(tmp=tmp_path)])
    assert code == 1
    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert line.startswith("qsn: error: Argument `--out`") and says in line
    assert captured.out == ""


@pytest.mark.parametrize("command", [["simulate"], ["demo"], ["network", "cuba", "-n", "100"]])
@pytest.mark.parametrize("duration", ["-5", "0", "0.01", "nan", "inf"])
def test_duration_names_the_flag(no_run, capsys, command, duration):
    assert main([*command, "--duration", duration, "--no-progress"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("qsn: error: Argument `--duration`") and "steps" not in line


@pytest.mark.parametrize("neurons", ["0", "-3", "1.5", "abc", "inf", "nan"])
def test_bad_neuron_count_is_one_argparse_line(capsys, neurons):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "-n", neurons])
    assert exc.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("qsn demo: error: argument --neurons/-n: must be a whole number >= 1")


def test_population_too_large_for_memory_is_one_line(tmp_path, capsys):
    # 1e10 neurons: qsn's preflight (MemoryBudgetError) or the allocator (XLA RESOURCE_EXHAUSTED, NumPy's
    # MemoryError) refuses it; either way the CLI prints one line and exits 1.
    code = main(["demo", "-n", "1e10", "--no-progress", "--out", str(tmp_path / "x.png")])
    assert code == 1
    captured = capsys.readouterr()
    assert _one_line(captured.err).startswith("qsn: error: ")
    assert captured.out == "" and not (tmp_path / "x.png").exists()


def test_memory_budget_error_is_one_line(monkeypatch, tmp_path, capsys):
    def refuse(*args, **kwargs):
        raise MemoryBudgetError("Argument `n` = 10000000000 neurons needs 200 GB of state, but 20 GB fit")

    monkeypatch.setattr("qsn.demo.run_demo", refuse)
    assert main(["demo", "-n", "1e10", "--out", str(tmp_path / "x.png")]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line == "qsn: error: Argument `n` = 10000000000 neurons needs 200 GB of state, but 20 GB fit"
