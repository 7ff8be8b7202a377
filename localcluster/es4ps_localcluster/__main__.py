"""`python -m es4ps_localcluster ...`: see es4ps_localcluster.cli."""

import sys

from .cli import main

sys.exit(main())
