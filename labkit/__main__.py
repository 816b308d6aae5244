"""``python -m labkit …``: the same as ``labkit …`` (and what the trace proxy's background process runs)."""

import sys

from labkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
