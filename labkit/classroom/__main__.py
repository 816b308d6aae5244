"""``python -m labkit.classroom serve|join|leave|status|flush|forget``: the same as ``labkit classroom``."""

import sys

from labkit.classroom.cli import main

sys.exit(main())
