"""The hub relay: bytes both ways between an accepted connection and one target (no namespaces, no root)."""

from __future__ import annotations

import asyncio
import socket

from labkit.classroom import hub_relay


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"echo:" + await reader.read(100))
    await writer.drain()
    writer.close()


async def _round_trip() -> bytes:
    target = await asyncio.start_server(_echo, "127.0.0.1", 0)
    target_port = target.sockets[0].getsockname()[1]
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    relay = await hub_relay.serve(listening, "127.0.0.1", target_port)
    try:
        reader, writer = await asyncio.open_connection(*listening.getsockname())
        writer.write(b"hello")
        writer.write_eof()
        got = await asyncio.wait_for(reader.read(), timeout=5)
        writer.close()
        return got
    finally:
        relay.close()
        target.close()


async def _refused() -> bytes:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    relay = await hub_relay.serve(listening, "127.0.0.1", dead_port)
    try:
        reader, writer = await asyncio.open_connection(*listening.getsockname())
        got = await asyncio.wait_for(reader.read(), timeout=5)
        writer.close()
        return got
    finally:
        relay.close()


def test_the_relay_carries_bytes_both_ways() -> None:
    assert asyncio.run(_round_trip()) == b"echo:hello"


def test_a_target_that_refuses_closes_the_connection() -> None:
    assert asyncio.run(_refused()) == b""
