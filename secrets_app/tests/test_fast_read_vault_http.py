"""The async read's HTTP to Vault (``secrets_app.fast_read._VaultConnection``), against a small
local server that answers as scripted: kept-alive reuse, chunked answers, a connection Vault
closed between reads, and every answer that is not a clean 200 refused (None), so that the
threads' path reads with hvac. The read against the real OpenBao is ``test_fast_read``'s."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from secrets_app import fast_read
from secrets_app.backends import vault
from secrets_app.models import SecretMetadata

SECRET = SecretMetadata(pk=1, secret_name="app/key", storage_backend="vault", current_version=3)


def answer(value: str = "the-value", status: str = "200 OK", chunked: bool = False) -> bytes:
    body = json.dumps({"data": {"data": {"value": value}, "metadata": {"version": 3}}}).encode()
    if chunked:
        half = len(body) // 2
        parts = [body[:half], body[half:]]
        encoded = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        return f"HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + encoded
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


Script = Callable[[int, bytes], Awaitable[bytes | None]]


class FakeVault:
    """Answers each request with ``script(connection number, request head)``; None closes."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                reply = await self.script(number, head)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def run(script: Script, reads: int = 1) -> tuple[list, FakeVault, object]:
    """``reads`` reads, one after the other, through one loop's resources."""
    fake = FakeVault(script)

    async def go() -> tuple[list, object]:
        server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        access = vault.Access(f"http://127.0.0.1:{port}", "s.token", "team-a", True, None, True)
        resources = fast_read._Resources(fast_read._Connections({}))
        resources.vault_at = at = fast_read._VaultEndpoint.of(access)
        assert at is not None
        values = []
        for _ in range(reads):
            conn = await fast_read._vault_connection(resources, at)
            values.append(await fast_read._read_vault(resources, at, conn, SECRET, 3))
        await resources.close()
        server.close()
        await server.wait_closed()
        return values, resources

    values, resources = asyncio.run(go())
    return values, fake, resources


async def ok(number: int, head: bytes) -> bytes:
    return answer()


def test_reads_share_one_kept_alive_connection_and_send_vaults_headers(settings):
    values, fake, _ = run(ok, reads=3)
    assert values == ["the-value"] * 3
    assert fake.connections == 1
    head = fake.requests[0].decode()
    assert head.startswith(f"GET /v1/{settings.SECRETS_VAULT_MOUNT}/data/")
    assert head.split("\r\n")[0].endswith("?version=3 HTTP/1.1")
    assert "X-Vault-Token: s.token\r\n" in head
    assert "X-Vault-Namespace: team-a\r\n" in head
    assert "X-Vault-Request: true\r\n" in head


def test_a_chunked_answer_is_read_whole():
    async def chunked(number: int, head: bytes) -> bytes:
        return answer("x" * 5000, chunked=True)

    assert run(chunked)[0] == ["x" * 5000]


def test_a_connection_vault_closed_between_reads_is_replaced_once():
    asked: dict[int, int] = {}

    async def close_after_one(number: int, head: bytes) -> bytes | None:
        # The first connection answers once, then closes as the second request arrives.
        asked[number] = asked.get(number, 0) + 1
        return None if number == 1 and asked[number] == 2 else answer()

    values, fake, _ = run(close_after_one, reads=2)
    assert values == ["the-value", "the-value"]
    assert fake.connections == 2


@pytest.mark.parametrize(
    "reply",
    [
        answer(status="403 Forbidden"),
        answer(status="404 Not Found"),
        answer(status="307 Temporary Redirect"),
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnope!",  # not JSON
        answer().replace(b'"value"', b'"other"'),  # no value
        b"SSH-2.0-OpenSSH\r\n\r\n",  # not HTTP
    ],
    ids=["403", "404", "redirect", "not-json", "no-value", "not-http"],
)
def test_anything_but_a_clean_answer_is_none(reply):
    async def script(number: int, head: bytes) -> bytes:
        return reply

    assert run(script)[0] == [None]


def test_a_403_asks_once_more_only_with_a_new_token(monkeypatch):
    """A token replaced since the snapshot: the snapshot is taken again and the read retried
    when its token differs; the same token is not asked twice."""
    tokens = iter(["s.renewed"])

    def fresh() -> vault.Access:
        return vault.Access(port_holder["uri"], next(tokens, "s.renewed"), None, True, None, True)

    port_holder: dict[str, str] = {}
    monkeypatch.setattr(vault, "access", fresh)

    async def script(number: int, head: bytes) -> bytes:
        return answer() if b"X-Vault-Token: s.renewed" in head else answer(status="403 Forbidden")

    fake = FakeVault(script)

    async def go() -> list:
        server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
        port_holder["uri"] = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        access = vault.Access(port_holder["uri"], "s.old", None, True, None, True)
        resources = fast_read._Resources(fast_read._Connections({}))
        resources.vault_at = at = fast_read._VaultEndpoint.of(access)
        assert at is not None
        conn = await fast_read._vault_connection(resources, at)
        got = [await fast_read._read_vault(resources, at, conn, SECRET, 3)]
        # Vault refuses the renewed token too: not asked a third time.
        at = resources.vault_at
        assert at is not None
        conn = await fast_read._vault_connection(resources, at)
        fake.script = lambda n, h: _forbidden()
        got.append(await fast_read._read_vault(resources, at, conn, SECRET, 3))
        await resources.close()
        server.close()
        return got

    async def _forbidden() -> bytes:
        return answer(status="403 Forbidden")

    assert asyncio.run(go()) == ["the-value", None]
    assert len(fake.requests) == 3  # old (403), renewed (200), renewed (403): not asked again


def test_an_answer_larger_than_any_secret_is_refused(monkeypatch):
    monkeypatch.setattr(fast_read, "MAX_VAULT_ANSWER", 1000)

    async def big(number: int, head: bytes) -> bytes:
        return answer("y" * 5000)

    values, _, resources = run(big)
    assert values == [None]
    assert resources.vault_down_until > 0  # the threads' path reads for a while


def test_a_slow_vault_times_out_and_its_connection_is_not_kept(settings):
    settings.VAULT_TIMEOUT = 0.2

    async def slow(number: int, head: bytes) -> bytes:
        await asyncio.sleep(1)
        return answer()

    values, _, resources = run(slow)
    assert values == [None]
    assert resources.vault_idle == []


@pytest.mark.parametrize(
    ("uri", "token", "direct"),
    [
        ("http://127.0.0.1:8200", "s.token", False),  # a proxy in the way
        ("unix:///run/vault.sock", "s.token", True),
        ("http://user:pw@127.0.0.1:8200", "s.token", True),
        ("http://127.0.0.1:8200", "s.token\r\nX-Evil: 1", True),
        ("http://127.0.0.1:8200", "s.tökén", True),
    ],
)
def test_what_the_async_read_leaves_to_hvac(uri, token, direct):
    assert fast_read._VaultEndpoint.of(vault.Access(uri, token, None, True, None, direct)) is None


def test_https_uses_the_tls_hvac_is_told():
    at = fast_read._VaultEndpoint.of(
        vault.Access("https://vault.example:8200", "s.t", None, True, None, True)
    )
    assert at is not None
    assert (at.host, at.port, at.tls is not None) == ("vault.example", 8200, True)
