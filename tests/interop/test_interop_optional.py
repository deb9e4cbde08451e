"""The interop libraries are optional: not imported with qsn.interop, and a missing one says how to install it."""

import importlib
import subprocess
import sys

import pytest

from qsn.errors import BackendUnavailableError
from qsn.interop import optional


def test_importing_qsn_interop_imports_no_optional_library():
    code = "import sys, qsn.interop; print(sorted(m for m in ('nir', 'neo', 'pynwb') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module", ["nir", "neo", "pynwb"])
def test_a_missing_library_names_itself_and_the_install_command(monkeypatch, module):
    def absent(name, *args):
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", absent)
    with pytest.raises(BackendUnavailableError, match=rf"{module} is not installed.*pip install 'qsn\[interop\]'"):
        optional.require(module)
