"""``python -m asc_sweep``: the same as the ``asc-sweep`` command."""

from .cli import main

main()
