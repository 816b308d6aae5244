"""labkit: the helper library behind the hands-on Docker course.

Example:
    >>> import labkit
    >>> labkit.sh("docker run --rm busybox echo hi")  # doctest: +SKIP
    hi
"""

from labkit.errors import LabkitError
from labkit.shell import sh

__all__ = ["LabkitError", "sh"]
__version__ = "0.1.0"
