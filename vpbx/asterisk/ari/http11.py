"""The ARI client's HTTP transport: plain HTTP/1.1 keep-alive connections to Asterisk's HTTP server.

Rule: an httpx transport and nothing more - `AriClient` builds every request with httpx (the same code the unit tests
drive through `httpx.MockTransport`); this module only moves the bytes. httpx's default transport (httpcore, h11,
anyio) spends about 1 ms of CPU per request, half of the engine's CPU per call under load (measured with
bench/calls.sh --profile); this one needs a tenth of that, because Asterisk's HTTP server is simple: every ARI response
has a Content-Length, one request at a time per connection.

    Http11Transport(max_connections=16)        httpx.AsyncClient(transport=..., base_url="http://127.0.0.1:8088/ari")

Connections are reused; one that Asterisk has closed meanwhile (http.conf `session_keep_alive`, 15 s idle) is
dropped before use, and if the close crosses our request (no byte of an answer arrived) the request is sent once more
on a new connection. Failures raise httpx's own exceptions (ConnectError, ReadTimeout, PoolTimeout, ReadError,
RemoteProtocolError: all httpx.TransportError), exactly as httpx's default transport would.
"""
from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx

MAX_HEADER_BYTES = 65536


class _Closed(Exception):
    """The server closed the connection before answering (a stale keep-alive connection)."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()


class Http11Transport(httpx.AsyncBaseTransport):
    def __init__(self, max_connections: int = 16, ssl_context: ssl.SSLContext | None = None) -> None:
        self._max = max_connections
        self._slots: asyncio.Semaphore | None = None
        self._idle: list[_Connection] = []
        self._ssl = ssl_context
        self.opened = 0            # connections opened so far (for tests and diagnostics)
        self.resent = 0            # requests sent again because a reused connection turned out closed

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, Any] = request.extensions.get("timeout") or {}
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max)
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout("no free connection to Asterisk", request=request) from exc
        try:
            body = await request.aread()
            head = self._head(request)
            for attempt in (1, 2):
                conn = self._take() if attempt == 1 else None     # the second try always on a new connection
                reused = conn is not None
                if conn is None:
                    conn = await self._connect(request, timeouts.get("connect"))
                try:
                    async with asyncio.timeout(timeouts.get("read")):
                        response, keep = await self._exchange(conn, head + body, request)
                except _Closed as exc:
                    conn.close()
                    if reused and attempt == 1:
                        self.resent += 1
                        continue
                    raise httpx.RemoteProtocolError("Asterisk closed the connection without answering",
                                                    request=request) from exc
                except TimeoutError as exc:
                    conn.close()
                    raise httpx.ReadTimeout("Asterisk did not answer in time", request=request) from exc
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                    conn.close()
                    raise httpx.ReadError(f"connection to Asterisk broke: {exc!r}", request=request) from exc
                except BaseException:       # cancelled mid-exchange: the connection's state is unknown
                    conn.close()
                    raise
                if keep:
                    self._idle.append(conn)
                else:
                    conn.close()
                return response
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()

    # ---- internals -----------------------------------------------------------------------------------------------
    def _take(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    async def _connect(self, request: httpx.Request, timeout: float | None) -> _Connection:
        url = request.url
        secure = url.scheme == "https"
        ctx = (self._ssl or ssl.create_default_context()) if secure else None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    url.host, url.port or (443 if secure else 80), ssl=ctx, limit=MAX_HEADER_BYTES,
                    server_hostname=url.host if secure else None)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {url.host}:{url.port} timed out", request=request) from exc
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {url.host}:{url.port}: {exc}", request=request) from exc
        self.opened += 1
        return _Connection(reader, writer)

    @staticmethod
    def _head(request: httpx.Request) -> bytes:
        lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
        lines += [b"%s: %s" % (name, value) for name, value in request.headers.raw]
        return b"\r\n".join(lines) + b"\r\n\r\n"

    @staticmethod
    async def _exchange(conn: _Connection, data: bytes, request: httpx.Request) -> tuple[httpx.Response, bool]:
        try:
            conn.writer.write(data)
            await conn.writer.drain()
        except ConnectionError as exc:
            raise _Closed() from exc
        try:
            head = await conn.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _Closed() from exc
            raise
        except ConnectionResetError as exc:
            raise _Closed() from exc
        status_line, *header_lines = head[:-4].split(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or not code.isdigit():
            raise httpx.RemoteProtocolError(f"not an HTTP/1.x answer: {status_line[:80]!r}", request=request)
        headers = []
        length: int | None = None
        chunked = False
        keep = version == b"HTTP/1.1"
        for line in header_lines:
            name, sep, value = line.partition(b":")
            if not sep:
                raise httpx.RemoteProtocolError(f"bad header line {line[:80]!r}", request=request)
            name, value = name.strip(), value.strip()
            headers.append((name, value))
            lowered = name.lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lowered == b"connection":
                keep = b"close" not in value.lower() and (keep or b"keep-alive" in value.lower())
        status = int(code)
        if request.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            content = b""
        elif chunked:
            content = await Http11Transport._chunks(conn.reader)
        elif length is not None:
            content = await conn.reader.readexactly(length)
        else:                                   # no length: the body ends with the connection
            content = await conn.reader.read()
            keep = False
        response = httpx.Response(status, headers=headers, content=content, request=request,
                                  extensions={"http_version": version, "reason_phrase": reason})
        return response, keep

    @staticmethod
    async def _chunks(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":   # trailers
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
