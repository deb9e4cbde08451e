"""The `qsn` command: parser, demo output, JSON, exit codes."""

import json
import subprocess
import sys

import pytest

from qsn.cli import build_parser, main


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


def test_qsn_error_gives_exit_code_1(capsys):
    # t2 > 2*t1 is unphysical: the CLI reports the ConfigurationError, no traceback.
    code = main(["simulate", "-n", "10", "--duration", "1", "--t2", "100", "--t1", "10", "--no-progress"])
    assert code == 1
    assert "t2 must be <= 2*t1" in capsys.readouterr().err


def test_bad_arguments_exit_2():
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["demo", "--mode", "quantum"])
    assert exc.value.code == 2


def test_info_and_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "qsn", "info"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    info = json.loads(proc.stdout)
    assert info["cupy_backend"] in (True, False) and info["devices"]
    helptext = subprocess.run([sys.executable, "-m", "qsn", "--help"], capture_output=True, text=True, timeout=120)
    assert "demo" in helptext.stdout and "simulate" in helptext.stdout
