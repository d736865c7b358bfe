"""``python -m swsync.cli`` runs the command line, as ``python -m swsync`` does."""

import sys

from . import main

sys.exit(main())
