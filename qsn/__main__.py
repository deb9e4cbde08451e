"""``python -m qsn`` — same as the ``qsn`` command."""

import sys

from qsn.cli import main

sys.exit(main())
