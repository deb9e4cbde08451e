"""The Python examples of README.md and docs/ run as written."""

import re
from pathlib import Path

import pytest

from qsn.kernels.compile import host_compiler

ROOT = Path(__file__).resolve().parents[1]


def _blocks(path: Path) -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)
    assert blocks, f"{path.name} has no python example"
    return blocks


def test_readme_example_runs(capsys):
    exec(compile(_blocks(ROOT / "README.md")[0], "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "Hz" in out and "jump spikes" in out


def test_readme_stepper_example_runs(capsys):
    exec(compile(_blocks(ROOT / "README.md")[1], "README.md", "exec"), {})
    out = capsys.readouterr().out.split()
    assert out[0] == "10000" and out[2] == "20000" and out[-1] == "available"


def test_readme_network_example_runs(capsys):
    exec(compile(_blocks(ROOT / "README.md")[2], "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "spikes per neuron" in out and "mean ISI CV" in out


def test_readme_scheduler_example_runs(capsys):
    exec(compile(_blocks(ROOT / "README.md")[3], "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.count("mean latency") == 3


def test_readme_learning_example_runs(capsys):
    exec(compile(_blocks(ROOT / "README.md")[4], "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "digits test accuracy" in out and float(out.split("accuracy ")[1].split()[0]) >= 0.95


@pytest.mark.skipif(host_compiler() is None, reason="the native backend needs a C++ compiler")
def test_kernels_doc_native_example_runs(capsys):
    exec(compile(_blocks(ROOT / "docs" / "kernels.md")[0], "docs/kernels.md", "exec"), {})
    spikes = int(capsys.readouterr().out.split()[0])
    assert spikes > 100_000  # the upper half of the currents drives neurons past threshold


def test_learning_doc_example_runs():
    scope: dict = {}
    exec(compile(_blocks(ROOT / "docs" / "learning.md")[0], "docs/learning.md", "exec"), scope)
    assert all(bool((abs(g) > 0).all()) for g in scope["grads"])


def test_scheduler_doc_example_runs(capsys):
    exec(compile(_blocks(ROOT / "docs" / "scheduler.md")[0], "docs/scheduler.md", "exec"), {})
    assert capsys.readouterr().out.count("makespan") == 4


def test_networks_doc_example_runs():
    scope: dict = {}
    exec(compile(_blocks(ROOT / "docs" / "networks.md")[0], "docs/networks.md", "exec"), scope)
    assert scope["spikes"].count().sum() > 0
    assert scope["probe"].v.shape == (1000, 5)  # the 500 ms after the checkpoint were forgotten on restore
    assert scope["net"].t == 1000.0  # restored to the checkpoint taken after 1000 ms


def test_interop_doc_examples_run_in_order(tmp_path, monkeypatch):
    """docs/interop.md's four examples, one after another as a reader runs them (they write .nir/.nwb files)."""
    for module in ("nir", "neo", "pynwb", "elephant"):
        pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    for block in _blocks(ROOT / "docs" / "interop.md"):
        exec(compile(block, "docs/interop.md", "exec"), scope)
    assert len(scope["units"]) == 16  # the from_nir network's two monitored layers of 8
