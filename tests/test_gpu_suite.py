"""bench/gpu_suite.py's CPU dry run: every part of the one-call GPU measurement still runs (at tiny sizes,
the fused-kernel parts on the native CPU build), so the script cannot rot between GPU sessions."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qsn.kernels.compile import host_compiler

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(host_compiler() is None, reason="the dry run's kernel parts use the native build (C++ compiler)")
def test_gpu_suite_dry_run_runs_every_part(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_suite.py"), "--dry-run", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    suite = json.loads((tmp_path / "suite.json").read_text())
    status = {p["part"]: p["status"] for p in suite["parts"]}
    assert list(status) == ["parity", "kernels", "drift", "brunel", "propagation", "training"]
    # on a machine without a GPU the parity tests and the propagation kernel have nothing to run
    assert status["parity"] in ("ok", "needs a GPU") and status["propagation"] in ("ok", "needs a GPU")
    for part in ("kernels", "drift", "brunel", "training"):
        assert status[part] == "ok", (part, status[part])
        files = next(p["files"] for p in suite["parts"] if p["part"] == part)
        data = json.loads((tmp_path / files[1]).read_text())
        assert data["rows"], part  # each part wrote its measurements, not an empty shell
    assert suite["environment"]["jax"]
