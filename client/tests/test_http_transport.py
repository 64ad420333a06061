"""The aiohttp transport against real sockets: answers, refusals and silence."""

from __future__ import annotations

import asyncio
import json

import pytest

from foundation_client import TransportError
from foundation_client._http import AiohttpTransport


async def serve(handler):
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def get_once(handler, *, bearer: str = "t", timeout: float = 2.0, path: str = "/x"):
    """One GET through the transport to a server answering with ``handler``."""
    server, port = await serve(handler)
    transport = AiohttpTransport(f"http://127.0.0.1:{port}", bearer, timeout)
    try:
        return await transport.get_json(path)
    finally:
        await transport.close()
        server.close()


def test_it_sends_the_token_and_parses_json():
    seen: dict[str, str] = {}

    async def handler(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        for line in head.decode().split("\r\n")[1:]:
            if ":" in line:
                key, _, value = line.partition(":")
                seen[key.lower()] = value.strip()
        body = json.dumps({"name": "k", "version": 1, "value": "v"}).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        await writer.drain()
        writer.close()

    answer = asyncio.run(get_once(handler, bearer="fdn_secret_token", path="/api/v1/secrets/k"))
    assert answer == (200, {"name": "k", "version": 1, "value": "v"})
    assert seen["authorization"] == "Bearer fdn_secret_token"


def test_a_non_json_answer_is_an_empty_body():
    async def handler(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 5\r\n\r\n<html")
        await writer.drain()
        writer.close()

    assert asyncio.run(get_once(handler)) == (502, {})


def test_a_refused_connection_is_a_transport_error():
    async def scenario():
        server, port = await serve(lambda r, w: None)
        server.close()
        await server.wait_closed()
        transport = AiohttpTransport(f"http://127.0.0.1:{port}", "t", 2.0)
        try:
            await transport.get_json("/x")
        finally:
            await transport.close()

    with pytest.raises(TransportError, match="cannot reach the foundation") as excinfo:
        asyncio.run(scenario())
    assert excinfo.value.__cause__ is None


def test_silence_is_a_timeout():
    async def handler(reader, writer):
        await asyncio.sleep(5)

    with pytest.raises(TransportError, match="did not answer in time"):
        asyncio.run(get_once(handler, timeout=0.2))
