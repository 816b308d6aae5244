"""``python -m labkit.trace …``: the same as ``labkit trace …`` (and what the background proxy runs)."""

import sys

from labkit.features.trace.cli import main

if __name__ == "__main__":
    sys.exit(main())
