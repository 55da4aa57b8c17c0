"""`python -m vaegan ...`: see vaegan/cli.py."""

import sys

from .cli import main

sys.exit(main())
