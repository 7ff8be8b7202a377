"""Run the operator: `python -m es4ps_operator`."""

from .cli import main

main()
