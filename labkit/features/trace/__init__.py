"""``labkit trace``: a recording proxy between the docker CLI and the daemon.

The proxy listens on a socket of its own (``<state dir>/trace/docker.sock``, mode
0600 in a 0700 folder, or ``127.0.0.1:PORT`` with TLS: only a client holding the
certificate made for that start gets in) and forwards every byte to the daemon's
socket. A web browser's request (``Origin``) is refused, and on TCP a ``Host`` other
than the proxy's own address. On
the way it reads the HTTP framing, so it can write one JSON line per API call to
``<state dir>/trace/trace.jsonl``: the method, the path with its query, the API
version prefix, the status, when it happened and on which connection. A check in
another process reads that file.

What it understands of HTTP/1.1 is what the Docker API uses: keep-alive (several
requests per connection), ``Content-Length`` and chunked bodies (pull progress
streams chunked), and *hijacked* connections (``attach``, ``exec`` start): after a
``101 Switching Protocols``, or a ``200`` with a raw-stream content type and no
length, the two sockets are joined and bytes are pumped both ways untouched.

Point the CLI at it for one command::

    DOCKER_HOST=unix://$HOME/.local/state/labkit/trace/docker.sock docker run --rm hello-world

The package, one module per concern:

- :mod:`labkit.trace.framing`: where each message ends, found by h11 reading along;
- :mod:`labkit.trace.proxy`: the proxy itself, which relays and records every call;
- :mod:`labkit.trace.tls`: TCP mode's TLS: certificates made per start, a thread-safe TLS connection;
- :mod:`labkit.trace.process`: the proxy as a background process (start, stop, status);
- :mod:`labkit.trace.log`: reading the trace log back as :class:`Call` values;
- :mod:`labkit.trace.views`: the trace as a table and as a sequence diagram;
- :mod:`labkit.trace.cli`: the ``labkit trace`` commands (registered by :mod:`labkit.cli`).

Example:
    >>> from labkit import trace
    >>> proxy = trace.start()  # doctest: +SKIP
    >>> labkit.sh(f"{proxy.shell_env} docker run --rm hello-world")  # doctest: +SKIP
    >>> trace.show()  # doctest: +SKIP
"""

from __future__ import annotations

from labkit.core.errors import DaemonUnavailable, LabkitError, WaitTimeout
from labkit.features.trace import tls
from labkit.features.trace.framing import (
    CAPTURE_LIMIT,
    MAX_HEAD,
    RAW_STREAM_TYPES,
    Gate,
    ProtocolError,
    Reader,
    header,
    is_hijack,
    relay_body,
)
from labkit.features.trace.log import Call, load, normalize_path
from labkit.features.trace.process import (
    MAX_UNIX_PATH,
    START_TIMEOUT,
    STOP_TIMEOUT,
    TraceStatus,
    _alive,
    _prepare_unix,
    folder,
    log_path,
    socket_path,
    start,
    status,
    stop,
    tls_folder,
)
from labkit.features.trace.proxy import Proxy, Recorder, body_fields, parse_address, pump, refusal, wants_body
from labkit.features.trace.views import STEPS, Diagram, Row, Trace, show, stable_order, step_of

__all__ = [
    "CAPTURE_LIMIT",
    "MAX_HEAD",
    "MAX_UNIX_PATH",
    "RAW_STREAM_TYPES",
    "START_TIMEOUT",
    "STEPS",
    "STOP_TIMEOUT",
    "Call",
    "DaemonUnavailable",
    "Diagram",
    "Gate",
    "LabkitError",
    "ProtocolError",
    "Proxy",
    "Reader",
    "Recorder",
    "Row",
    "Trace",
    "TraceStatus",
    "WaitTimeout",
    "_alive",
    "_prepare_unix",
    "body_fields",
    "folder",
    "header",
    "is_hijack",
    "load",
    "log_path",
    "normalize_path",
    "parse_address",
    "pump",
    "refusal",
    "relay_body",
    "show",
    "socket_path",
    "stable_order",
    "start",
    "status",
    "step_of",
    "stop",
    "tls",
    "tls_folder",
    "wants_body",
]
