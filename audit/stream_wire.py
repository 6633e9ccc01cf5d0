"""Pull batches of the KHIDMA stream read straight off the NATS protocol.

nats-py turns every message into an object, runs the subscription's callback in a
task and parses its headers: about 12 µs of CPU a message, most of the replay's
reading. Here the audit holds a second, plain connection to the server (beside
nats-py's, which keeps the JetStream API calls) and reads the bytes in large
chunks: one buffer holds many `HMSG`/`MSG` frames, each found with `bytes.find`
and cut with slices, about 2 µs a message.

The same end-of-stream and error rules as `audit.replay._Batch`: a batch ends
with as many messages as asked, with the last pending one, or with its own
request's 404 / 408 status; any other status on it stops the read with an error,
never passing for the end. What this plain connection cannot do (TLS, a
credentials file, an nkey) is left to nats-py's reader (`WireUnavailable`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import unquote

CRLF = b"\r\n"
READ_CHUNK = 1 << 20
ACK_V1_TOKENS = 9


class WireUnavailable(RuntimeError):
    """The plain connection cannot be made here: read with nats-py instead."""


class StatusRefused(RuntimeError):
    """The server answered a pull request with a status other than the end's."""


class WireReader:
    """One plain NATS connection reading pull batches for one consumer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = b""
        self.position = 0
        self.pending = -1
        self.own_reply = b""
        self.inbox = "_INBOX.audit-wire"

    @classmethod
    async def open(cls, connection: Any, *, timeout: float = 5.0) -> WireReader:
        """A plain connection to the server nats-py's `connection` is connected to, with
        its credentials (user and password, or a token)."""
        url = connection.connected_url
        options = connection.options
        if url is None or url.scheme not in ("nats", "") or options.get("tls"):
            raise WireUnavailable("TLS or no plain URL")
        signed = ("_user_credentials", "_nkeys_seed", "_nkeys_seed_str", "_signature_cb")
        if any(getattr(connection, name, None) for name in signed):
            raise WireUnavailable("a credentials file or an nkey")
        if any(callable(options.get(name)) for name in ("user", "password", "token")):
            raise WireUnavailable("credentials given by a function")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(url.hostname, url.port or 4222, limit=READ_CHUNK * 4),
                timeout,
            )
        except (OSError, TimeoutError) as error:
            raise WireUnavailable(str(error)) from error
        wire = cls(reader, writer)
        # The connection's own inbox prefix: the subjects its user may subscribe to.
        wire.inbox = str(connection.new_inbox())
        try:
            await asyncio.wait_for(wire._handshake(url, options), timeout)
        except (OSError, TimeoutError, ValueError) as error:  # no answer, or not NATS's
            wire.writer.close()
            raise WireUnavailable(str(error) or type(error).__name__) from error
        except BaseException:
            wire.writer.close()
            raise
        return wire

    async def _handshake(self, url: Any, options: dict[str, Any]) -> None:
        line = await self.reader.readline()
        if not line.startswith(b"INFO "):
            raise WireUnavailable(f"unexpected greeting {line[:40]!r}")
        info = json.loads(line[5:])
        if info.get("tls_required") or info.get("nonce"):
            raise WireUnavailable("the server asks for TLS or a signed nonce")
        connect: dict[str, Any] = {
            "verbose": False,
            "pedantic": False,
            "lang": "python",
            "version": "khidma-audit",
            "protocol": 1,
            "headers": True,
            "no_responders": True,
        }
        user = options.get("user") or (unquote(url.username) if url.username else None)
        password = options.get("password") or (unquote(url.password) if url.password else None)
        token = options.get("token")
        if user and password is None and token is None:
            token, user = user, None  # nats://token@host
        if user:
            connect.update(user=user, **{"pass": password or ""})
        if token:
            connect["auth_token"] = token
        self.writer.write(b"CONNECT " + json.dumps(connect).encode() + CRLF + b"PING" + CRLF)
        await self.writer.drain()
        while True:
            line = await self.reader.readline()
            if not line:
                raise WireUnavailable("the server closed the plain connection")
            if line.startswith(b"-ERR"):
                raise WireUnavailable(line.decode(errors="replace").strip())
            if line.startswith(b"PONG"):
                break
        self.writer.write(f"SUB {self.inbox}.* 1\r\n".encode())

    def request(self, subject: str, reply: str, body: bytes) -> None:
        self.writer.write(f"PUB {subject} {reply} {len(body)}\r\n".encode() + body + CRLF)

    async def batch(
        self, wanted: int, reply: str, idle_timeout: float
    ) -> tuple[list[tuple[int, str, bytes]], int, bool]:
        """The messages of one pull request: (items, pending after the last, whether
        the batch ended before `idle_timeout` passed without a byte)."""
        await self.writer.drain()
        items: list[tuple[int, str, bytes]] = []
        self.pending = -1
        self.own_reply = reply.encode()
        while True:
            if self._frames(items, wanted):
                return items, self.pending, True
            try:
                chunk = await asyncio.wait_for(self.reader.read(READ_CHUNK), idle_timeout)
            except TimeoutError:
                return items, self.pending, False
            if not chunk:
                raise ConnectionError("the server closed the connection during the read")
            self.buffer = self.buffer[self.position :] + chunk
            self.position = 0

    def _frames(self, items: list[tuple[int, str, bytes]], wanted: int) -> bool:
        """Takes the whole frames of the buffer into `items`; True once the batch is
        complete (as many as wanted, the last pending one, or its own status).

        One loop with local names: this runs once a message."""
        buffer, position, append = self.buffer, self.position, items.append
        find, size = buffer.find, len(buffer)
        try:
            while True:
                end = find(CRLF, position)
                if end < 0:
                    return False
                if buffer.startswith(b"HMSG ", position):
                    parts = buffer[position + 5 : end].split(b" ")
                    body = end + 2
                    total = int(parts[-1])
                    if size < body + total + 2:
                        return False
                    header_size = int(parts[-2])
                    next_position = body + total + 2
                    if buffer[body + 8] == 32:  # "NATS/1.0 404 …": a status, not a message
                        position = next_position
                        if self._status(parts[0], buffer[body : body + header_size]):
                            return True
                        continue
                    data = buffer[body + header_size : body + total]
                elif buffer.startswith(b"MSG ", position):
                    parts = buffer[position + 4 : end].split(b" ")
                    body = end + 2
                    total = int(parts[-1])
                    if size < body + total + 2:
                        return False
                    next_position = body + total + 2
                    data = buffer[body : body + total]
                else:
                    self._control(buffer[position:end])
                    position = end + 2
                    continue
                position = next_position
                if len(parts) < 4 or not parts[2].startswith(b"$JS.ACK."):
                    continue  # not a stream message (nothing else is sent to this inbox)
                tokens = parts[2].split(b".")
                # $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>
                # .<pending>, or with the domain and account hash in front (11 tokens and more).
                offset = 0 if len(tokens) == ACK_V1_TOKENS else 2
                append((int(tokens[5 + offset]), parts[0].decode(), data))
                self.pending = pending = int(tokens[8 + offset])
                if len(items) >= wanted or pending == 0:
                    return True
        finally:
            self.position = position

    def _status(self, subject: bytes, headers: bytes) -> bool:
        """A status on the inbox: True when it ends this request (404 / 408); an earlier
        request's is ignored; any other on this one is an error."""
        if subject != self.own_reply:
            return False
        if headers[9:12] not in (b"404", b"408"):
            raise StatusRefused(headers[9 : headers.find(CRLF)].decode(errors="replace").strip())
        return True

    def _control(self, line: bytes) -> None:
        if line == b"PING":
            self.writer.write(b"PONG" + CRLF)
        elif line.startswith(b"-ERR"):
            raise StatusRefused(line.decode(errors="replace"))
        # +OK, PONG, INFO: nothing to do

    async def close(self) -> None:
        try:
            self.writer.write(b"UNSUB 1\r\n")
            await self.writer.drain()
        except (OSError, RuntimeError):
            pass
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (OSError, RuntimeError):
            pass
