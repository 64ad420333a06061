"""The async read's HTTP to Vault (``secrets_app.fast_read._VaultConnection``), against a small
local server that answers as scripted: kept-alive reuse, chunked answers, a connection Vault
closed between reads, and every answer that is not a clean 200 refused (None), so that the
threads' path reads with hvac. The read against the real OpenBao is ``test_fast_read``'s."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from secrets_app import fast_read
from secrets_app.backends import vault
from secrets_app.models import SecretMetadata

SECRET = SecretMetadata(pk=1, secret_name="app/key", storage_backend="vault", current_version=3)


def answer(
    value: str = "the-value", status: str = "200 OK", chunked: bool = False, version: int = 3
) -> bytes:
    body = json.dumps({"data": {"data": {"value": value}, "metadata": {"version": version}}})
    raw = body.encode()
    if chunked:
        half = len(raw) // 2
        parts = [raw[:half], raw[half:]]
        encoded = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        return f"HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + encoded
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(raw)}"
    return head.encode() + b"\r\n\r\n" + raw


#: A script's reply, then the connection closed (without saying so in the answer).
CLOSE_AFTER = object()

Script = Callable[[int, bytes], Awaitable[Any]]


class FakeVault:
    """Answers each request with ``script(connection number, request head)``: bytes; None to
    close instead; or ``(bytes, after)``: then, a moment later, ``after`` (bytes) is sent
    unasked, or the connection closed (``CLOSE_AFTER``)."""

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
                after = reply[1] if isinstance(reply, tuple) else None
                writer.write(reply[0] if after is not None else reply)
                await writer.drain()
                if after is not None:
                    await asyncio.sleep(0.02)  # the client has its answer: then, unasked
                    if after is CLOSE_AFTER:
                        break
                    writer.write(after)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went, or the test's loop is closing
        finally:
            writer.close()


class Run:
    """``reads`` reads through one loop's resources, one after the other; what Vault saw."""

    def __init__(
        self, script: Script, monkeypatch: Any, reads: int = 1, path: str = "", pause: float = 0
    ) -> None:
        self.fake = FakeVault(script)
        self.values: list[str | None] = []
        self.kept: list[int] = []  # connections kept after each read
        self.trouble: list[bool] = []  # whether each read sent the next ones to the threads

        async def go() -> None:
            server = await asyncio.start_server(self.fake.handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            access = vault.Access(
                f"http://127.0.0.1:{port}{path}", "s.token", "team-a", True, None, True
            )
            monkeypatch.setattr(vault, "access", lambda: access)  # a fresh snapshot: the same
            self.resources = resources = fast_read._Resources(fast_read._Connections({}))
            for _ in range(reads):
                at = await fast_read._vault_endpoint(resources)
                assert at is not None
                conn = await fast_read._vault_connection(resources, at)
                self.values.append(await fast_read._read_vault(resources, at, conn, SECRET, 3))
                self.kept.append(len(resources.vault_idle))
                self.trouble.append(resources.vault_down_until > 0)
                resources.vault_down_until = 0  # each read asks Vault
                await asyncio.sleep(pause)
            await resources.close()
            server.close()
            await server.wait_closed()

        asyncio.run(go())


async def ok(number: int, head: bytes) -> bytes:
    return answer()


def test_reads_share_one_kept_alive_connection_and_send_vaults_headers(settings, monkeypatch):
    run = Run(ok, monkeypatch, reads=3)
    assert run.values == ["the-value"] * 3
    assert (run.fake.connections, run.kept) == (1, [1, 1, 1])
    head = run.fake.requests[0].decode()
    assert head.startswith(f"GET /v1/{settings.SECRETS_VAULT_MOUNT}/data/")
    assert head.split("\r\n")[0].endswith("?version=3 HTTP/1.1")
    assert "X-Vault-Token: s.token\r\n" in head
    assert "X-Vault-Namespace: team-a\r\n" in head
    assert "X-Vault-Request: true\r\n" in head


def test_the_path_of_vault_addr_is_kept_as_hvac_keeps_it(settings, monkeypatch):
    run = Run(ok, monkeypatch, path="/gateway/vault/")
    assert run.values == ["the-value"]
    prefix = f"GET /gateway/vault/v1/{settings.SECRETS_VAULT_MOUNT}/data/"
    assert run.fake.requests[0].decode().startswith(prefix)


def test_a_chunked_answer_is_read_whole(monkeypatch):
    async def chunked(number: int, head: bytes) -> bytes:
        return answer("x" * 5000, chunked=True)

    assert Run(chunked, monkeypatch).values == ["x" * 5000]


def test_a_connection_vault_closed_as_a_request_went_is_replaced_once(monkeypatch):
    asked: dict[int, int] = {}

    async def close_on_second(number: int, head: bytes) -> bytes | None:
        asked[number] = asked.get(number, 0) + 1
        return None if number == 1 and asked[number] == 2 else answer()

    run = Run(close_on_second, monkeypatch, reads=2)
    assert run.values == ["the-value", "the-value"]
    assert run.fake.connections == 2


@pytest.mark.parametrize("after", [CLOSE_AFTER, b"HTTP/1.1 200 OK\r\n"], ids=["closed", "bytes"])
def test_a_connection_closed_or_sent_bytes_while_idle_is_not_used(monkeypatch, after):
    async def then(number: int, head: bytes) -> tuple[bytes, object]:
        return answer(), after

    run = Run(then, monkeypatch, reads=3, pause=0.1)
    assert run.values == ["the-value"] * 3
    assert run.fake.connections == 3
    assert len(run.fake.requests) == 3  # none sent on a connection no longer fit


@pytest.mark.parametrize(
    ("reply", "trouble"),
    [
        (answer(status="403 Forbidden"), True),
        (answer(status="307 Temporary Redirect"), True),
        (answer(status="429 Too Many Requests"), True),
        (answer(status="503 Service Unavailable"), True),
        (answer(status="404 Not Found"), False),  # this secret's alone
        (answer(version=4), False),  # another version than asked for
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnope!", False),  # not JSON
        (answer().replace(b'"value"', b'"other"'), False),  # no value
        (b"SSH-2.0-OpenSSH\r\n\r\n", True),  # not HTTP
        (b"HTTP/1.1 100 Continue\r\n\r\n" + answer(), True),  # an interim answer
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", True),
    ],
    ids=[
        "403",
        "redirect",
        "429",
        "503",
        "404",
        "other-version",
        "not-json",
        "no-value",
        "not-http",
        "1xx",
        "upgrade",
    ],
)
def test_anything_but_a_clean_answer_is_none_and_its_connection_not_kept(
    monkeypatch, reply, trouble
):
    """None: the threads' path reads. Where the next read would fail alike (not a 404 of one
    secret), reads go to the threads' path for a while, before writing anything."""

    async def script(number: int, head: bytes) -> bytes:
        return reply

    run = Run(script, monkeypatch)
    assert run.values == [None]
    assert run.kept == [0]
    assert run.trouble == [trouble]


def test_bytes_no_request_asked_for_close_the_connection(monkeypatch):
    async def twice(number: int, head: bytes) -> bytes:
        return answer() + answer("stale")

    run = Run(twice, monkeypatch, reads=2)
    assert run.values == ["the-value", "the-value"]  # never "stale"
    assert run.fake.connections == 2


def test_a_403_asks_once_more_only_with_a_new_token(monkeypatch):
    """A token replaced since the snapshot: the snapshot is taken again and the read retried
    when its token differs; the same token is not asked twice."""
    tokens = iter(["s.old", "s.renewed"])

    async def script(number: int, head: bytes) -> bytes:
        return answer() if b"X-Vault-Token: s.renewed" in head else answer(status="403 Forbidden")

    fake = FakeVault(script)

    async def go() -> list[str | None]:
        server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
        uri = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        monkeypatch.setattr(
            vault,
            "access",
            lambda: vault.Access(uri, next(tokens, "s.renewed"), None, True, None, True),
        )
        resources = fast_read._Resources(fast_read._Connections({}))
        got = []
        for _ in range(2):
            at = await fast_read._vault_endpoint(resources)
            assert at is not None
            conn = await fast_read._vault_connection(resources, at)
            got.append(await fast_read._read_vault(resources, at, conn, SECRET, 3))
            if got[-1]:
                fake.script = forbidden  # Vault refuses the renewed token too
        await resources.close()
        server.close()
        return got

    async def forbidden(number: int, head: bytes) -> bytes:
        return answer(status="403 Forbidden")

    assert asyncio.run(go()) == ["the-value", None]
    assert len(fake.requests) == 3  # old (403), renewed (200), renewed (403): not asked again


def test_an_answer_larger_than_any_secret_is_refused(monkeypatch):
    monkeypatch.setattr(fast_read, "MAX_VAULT_ANSWER", 1000)

    async def big(number: int, head: bytes) -> bytes:
        return answer("y" * 5000)

    run = Run(big, monkeypatch)
    assert (run.values, run.kept, run.trouble) == ([None], [0], [True])  # threads' path, a while


def test_a_slow_vault_times_out_and_its_connection_is_not_kept(settings, monkeypatch):
    settings.VAULT_TIMEOUT = 0.2

    async def slow(number: int, head: bytes) -> bytes:
        await asyncio.sleep(1)
        return answer()

    run = Run(slow, monkeypatch)
    assert (run.values, run.kept) == ([None], [0])


def test_a_read_cancelled_mid_answer_closes_its_connection(monkeypatch):
    async def slow(number: int, head: bytes) -> bytes:
        await asyncio.sleep(1)
        return answer()

    async def go() -> fast_read._VaultConnection:
        server = await asyncio.start_server(FakeVault(slow).handle, "127.0.0.1", 0)
        uri = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        access = vault.Access(uri, "s.t", None, True, None, True)
        monkeypatch.setattr(vault, "access", lambda: access)
        resources = fast_read._Resources(fast_read._Connections({}))
        at = await fast_read._vault_endpoint(resources)
        assert at is not None
        conn = await fast_read._vault_connection(resources, at)
        task = asyncio.ensure_future(fast_read._read_vault(resources, at, conn, SECRET, 3))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert resources.vault_idle == []
        await resources.close()
        server.close()
        return conn

    assert asyncio.run(go()).closed


@pytest.mark.parametrize(
    ("uri", "token", "direct"),
    [
        ("http://127.0.0.1:8200", "s.token", False),  # a proxy in the way
        ("unix:///run/vault.sock", "s.token", True),
        ("http://user:pw@127.0.0.1:8200", "s.token", True),
        ("http://127.0.0.1:8200?x=1", "s.token", True),
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
