"""`python -m es4ps_devtools ...`: see `es4ps_devtools.cli`."""

import sys

from .cli import main

sys.exit(main())
