"""``python -m labkit.cli …``: the same as ``labkit …``."""

import sys

from labkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
