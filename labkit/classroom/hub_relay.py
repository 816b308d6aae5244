"""One host TCP service, relayed into a learner's network namespace (the hub's API).

A learner's lab runs in a network namespace of its own (``learner_engine``), where the
host's 127.0.0.1 is out of reach; JupyterHub's single-user server must still call the hub's
API. The hub process accepts on a socket made **inside** the learner's namespace
(:func:`labkit.classroom.learner_engine.listen_in_netns`) and opens, for each connection,
one to the hub on the host: the lab reaches that one port, and no other host service.

JupyterHub 6 can bind its own API on a unix socket (``hub_bind_url = "http+unix://…"``),
but the single-user server's API client (``jupyterhub.services.auth``) speaks TCP only,
hence this relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

#: Bytes read at a time on either side.
CHUNK = 64 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of file, then half-close: the other direction may still be talking."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def serve(listening: socket.socket, host: str, port: int) -> asyncio.Server:
    """Relay each connection accepted on ``listening`` to ``host:port`` (on the hub's side).

    The server owns ``listening``: closing it (``server.close()``) closes the socket.
    """

    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            hub_reader, hub_writer = await asyncio.open_connection(host, port)
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(_pipe(client_reader, hub_writer), _pipe(hub_reader, client_writer))
        finally:
            hub_writer.close()
            client_writer.close()

    listening.setblocking(False)
    return await asyncio.start_server(relay, sock=listening)
