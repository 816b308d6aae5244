"""TLS for the proxy's TCP mode: certificates made for each start, and a connection safe across threads.

A TCP port on 127.0.0.1 can be opened by every user of the machine and by any web page
the learner visits, so ``labkit trace start --tcp`` accepts only clients holding a
certificate it just made: a CA of its own (its key is thrown away once it has signed),
a server certificate for ``127.0.0.1`` and ``localhost``, and a client certificate. The
client's files carry the names the docker CLI reads from ``DOCKER_CERT_PATH``
(``ca.pem``, ``cert.pem``, ``key.pem``); every file is 0600 in a 0700 folder. The
``openssl`` command makes them (OpenSSL or LibreSSL), so labkit needs no crypto package.

:class:`TlsChannel` runs TLS over a connected socket through :class:`ssl.SSLObject`
and memory buffers, with one lock around OpenSSL: the proxy reads from a client in one
thread while it writes to it from another (a hijacked ``attach``), which an
:class:`ssl.SSLSocket` does not allow safely.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from pathlib import Path

from labkit.core.errors import LabkitError
from labkit.core.i18n import _

#: The files the docker CLI reads from ``DOCKER_CERT_PATH``.
CA, CERT, KEY = "ca.pem", "cert.pem", "key.pem"
#: The proxy's own certificate and key, beside them.
SERVER_CERT, SERVER_KEY = "server-cert.pem", "server-key.pem"
#: Days the certificates are valid; each start makes new ones anyway.
VALID_DAYS = 30
#: Seconds a client may take to complete the TLS handshake.
HANDSHAKE_TIMEOUT = 10.0
#: Seconds each ``openssl`` command may take.
OPENSSL_TIMEOUT = 30.0

_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
"""


def _openssl(*args: str, cwd: Path) -> None:
    """Run one ``openssl`` command; its files are born readable by their owner only.

    Raises:
        LabkitError: there is no ``openssl``, or it failed (its last line says why).
    """
    try:
        done = subprocess.run(
            ["openssl", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=OPENSSL_TIMEOUT,
            umask=0o077,
            check=False,
        )
    except FileNotFoundError as e:
        raise LabkitError(
            _("labkit trace --tcp needs the openssl command to make its TLS certificates"),
            _("install openssl (Debian: apt-get install openssl), or trace through the unix socket (no --tcp)"),
        ) from e
    except subprocess.TimeoutExpired as e:
        raise LabkitError(
            _("openssl {command} took more than {seconds:.0f} s").format(command=args[0], seconds=OPENSSL_TIMEOUT)
        ) from e
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise LabkitError(
            _("openssl {command} failed: {said}").format(command=args[0], said=said),
            _("check that `openssl version` works"),
        )


def make_credentials(folder: Path) -> Path:
    """Make a fresh CA, a server certificate and a client certificate in ``folder``.

    Whatever was in the folder goes first, so certificates from an earlier start stop
    working. The CA's key only exists while it signs, in a scratch folder removed after.

    Args:
        folder: where the files go (created 0700).

    Returns:
        ``folder``: the value for ``DOCKER_CERT_PATH``.

    Raises:
        LabkitError: ``openssl`` is missing or failed.
    """
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700, parents=True)
    folder.chmod(0o700)
    days = str(VALID_DAYS)
    with tempfile.TemporaryDirectory(prefix="make-", dir=folder) as scratch_name:
        scratch = Path(scratch_name)
        (scratch / "openssl.cnf").write_text(_CONFIG)
        for name in ("ca-key.pem", "server-key.pem", "key.pem"):
            _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name, cwd=scratch)
        _openssl(
            "req", "-x509", "-new", "-sha256", "-config", "openssl.cnf", "-extensions", "ca",
            "-key", "ca-key.pem", "-subj", "/CN=labkit trace CA", "-days", days, "-out", CA,
            cwd=scratch,
        )  # fmt: skip
        for key, cert, subject, section in (
            ("server-key.pem", SERVER_CERT, "/CN=127.0.0.1", "server"),
            ("key.pem", CERT, "/CN=labkit trace client", "client"),
        ):
            _openssl(
                "req", "-new", "-sha256", "-config", "openssl.cnf", "-key", key, "-subj", subject,
                "-out", f"{section}.csr",
                cwd=scratch,
            )  # fmt: skip
            _openssl(
                "x509", "-req", "-sha256", "-in", f"{section}.csr", "-CA", CA, "-CAkey", "ca-key.pem",
                "-set_serial", str(secrets.randbits(63)), "-days", days,
                "-extfile", "openssl.cnf", "-extensions", section, "-out", cert,
                cwd=scratch,
            )  # fmt: skip
        for name in (CA, CERT, KEY, SERVER_CERT, SERVER_KEY):
            (scratch / name).chmod(0o600)
            (scratch / name).replace(folder / name)
    return folder


def server_context(folder: Path) -> ssl.SSLContext:
    """The proxy's TLS settings: its certificate, and a client certificate from the same CA required.

    Raises:
        LabkitError: the files are missing or damaged.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.options |= ssl.OP_NO_TICKET  # no session resumption: nothing to keep between connections
    context.num_tickets = 0
    try:
        context.load_verify_locations(cafile=str(folder / CA))
        context.load_cert_chain(str(folder / SERVER_CERT), str(folder / SERVER_KEY))
    except (OSError, ssl.SSLError) as e:
        raise LabkitError(
            _("cannot read the trace proxy's TLS files in {folder}: {error}").format(folder=folder, error=e),
            _("start it again with labkit trace start --tcp PORT (it makes new ones)"),
        ) from e
    return context


class TlsChannel:
    """The server's side of a TLS connection over ``sock``, usable from two threads at once.

    It offers what the proxy uses of a socket (``recv``, ``sendall``, ``shutdown``,
    ``close``). Every call into OpenSSL holds one lock; what TLS writes leaves in the
    order it was made, so one thread's reads and another's writes cannot mix records.

    Args:
        sock: an accepted TCP connection.
        context: from :func:`server_context`.
    """

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.sock = sock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._lock = threading.Lock()  # OpenSSL's state
        self._wire = threading.Lock()  # ciphertext leaves in the order it was made
        self._ended = False  # the client's TCP side has ended

    def handshake(self, timeout: float = HANDSHAKE_TIMEOUT) -> None:
        """Complete the handshake, the client's certificate checked, within ``timeout`` seconds.

        Raises:
            OSError: the client has no valid certificate (``ssl.SSLError``), spoke no TLS,
                hung up, or took too long.
        """
        self.sock.settimeout(timeout)
        try:
            while True:
                with self._wire:
                    with self._lock:
                        try:
                            self._tls.do_handshake()
                            done = True
                        except ssl.SSLWantReadError:
                            done = False
                        except ssl.SSLError:
                            refusal = self._outgoing.read()  # the alert tells the client why
                            with contextlib.suppress(OSError):  # the alert is a courtesy
                                self.sock.sendall(refusal)
                            raise
                        out = self._outgoing.read()
                    if out:
                        self.sock.sendall(out)
                if done:
                    return
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionAbortedError("the client hung up during the TLS handshake")
                with self._lock:
                    self._incoming.write(data)
        finally:
            self.sock.settimeout(None)

    def recv(self, bufsize: int, /) -> bytes:
        """Up to ``bufsize`` bytes of plain text; ``b""`` when the client has ended its side."""
        while True:
            with self._wire:
                with self._lock:
                    try:
                        data: bytes | None = self._tls.read(bufsize)
                    except ssl.SSLWantReadError:
                        data = None
                    except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                        data = b""  # close_notify, or the TCP end at a record's boundary
                    out = self._outgoing.read()  # reading can make TLS answer (a key update)
                if out:
                    self.sock.sendall(out)
            if data is not None:
                return data
            if self._ended:
                return b""
            raw = self.sock.recv(65536)
            if not raw:
                # OpenSSL is not told: to it an end without close_notify is fatal, and this
                # side must still send (the docker CLI half-closes so, then reads the output).
                self._ended = True
                return b""
            with self._lock:
                self._incoming.write(raw)

    def sendall(self, data: bytes, /) -> None:
        """Send all of ``data``, encrypted."""
        with self._wire:
            with self._lock:
                view = memoryview(data)
                while view:
                    view = view[self._tls.write(view) :]
                out = self._outgoing.read()
            self.sock.sendall(out)

    def shutdown(self, how: int, /) -> None:
        """End one direction of the TCP connection, as the docker CLI itself does under TLS (no close_notify)."""
        with self._wire:
            self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()
