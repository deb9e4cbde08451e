"""qsn.qubo stands alone: importing it, or the hyperparameter search that anneals with it, loads no scheduler.

Each check runs in a fresh interpreter, so modules imported by other tests in this process cannot hide a
dependency. The old paths ``qsn.scheduler.{qubo,anneal,qaoa}`` still give the same objects.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded_after(statement: str) -> set[str]:
    """The ``qsn.*`` modules in ``sys.modules`` after running ``statement`` in a new interpreter."""
    code = f"import sys\n{statement}\nprint(' '.join(m for m in sys.modules if m.startswith('qsn')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("statement", ["import qsn.qubo", "import qsn.learning.search", "import qsn.learning"])
def test_qubo_and_search_do_not_import_the_scheduler(statement):
    loaded = _loaded_after(statement)
    assert "qsn.qubo.annealer" in loaded  # the check sees the modules it should
    assert not {m for m in loaded if m.startswith("qsn.scheduler")}, sorted(loaded)


def test_qubo_does_not_import_learning():
    loaded = _loaded_after("import qsn.qubo")
    assert not {m for m in loaded if m.startswith("qsn.learning")}, sorted(loaded)


def test_old_scheduler_paths_give_the_same_objects():
    import qsn.qubo as qubo
    from qsn.scheduler import anneal, qaoa
    from qsn.scheduler import qubo as old_qubo

    assert anneal.anneal is qubo.anneal and anneal.parallel_tempering is qubo.parallel_tempering
    assert old_qubo.make_qubo is qubo.make_qubo and old_qubo.QUBO is qubo.QUBO
    assert qaoa.solve is qubo.qaoa.solve
