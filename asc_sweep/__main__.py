"""``python -m asc_sweep``: the same as the ``asc-sweep`` command."""

from asc_sweep.cli import main

main()
