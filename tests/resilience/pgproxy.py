"""A TCP proxy in front of PostgreSQL that can cut a connection at the COMMIT: before it
reaches the server (nothing committed) or after the server committed but before the answer
reaches the client. Only there can a test choose which one happened: a stopped server leaves
it to chance.

It reads the wire protocol's framing only (a type byte and a length per message, after the
untyped startup message), so the connection must not use TLS (`sslmode=disable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import struct
from urllib.parse import urlsplit, urlunsplit


class Cut(enum.Enum):
    BEFORE_COMMIT = "before"  # COMMIT is never sent: the transaction is rolled back
    AFTER_COMMIT = "after"  # COMMIT ran; its CommandComplete is never delivered


class CommitCutter:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._armed: Cut | None = None
        self._links: set[asyncio.Task[None]] = set()
        self.cuts: list[Cut] = []

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, url: str) -> str:
        """`url` (of the upstream server) through this proxy, without TLS."""
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        netloc_new = f"{netloc[0]}@{host}" if len(netloc) == 2 else host
        query = f"{parts.query}&sslmode=disable" if parts.query else "sslmode=disable"
        return urlunsplit(parts._replace(netloc=netloc_new, query=query))

    def arm(self, cut: Cut) -> None:
        """Cut the connection that sends the next COMMIT, as `cut` says."""
        self._armed = cut

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for link in list(self._links):
            link.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._links, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self._upstream)
        link = asyncio.current_task()
        assert link is not None
        self._links.add(link)
        # Set when this connection's COMMIT went to the server and its answer must not return.
        swallow = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as pumps:
                pumps.create_task(self._frontend(client_r, server_w, swallow))
                pumps.create_task(self._backend(server_r, client_w, swallow))
        except* (ConnectionError, asyncio.IncompleteReadError, _Cut):
            pass  # either side hung up, or the test cut the connection
        finally:
            self._links.discard(link)
            for writer in (client_w, server_w):
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()

    async def _frontend(
        self,
        reader: asyncio.StreamReader,
        upstream: asyncio.StreamWriter,
        swallow: asyncio.Event,
    ) -> None:
        length = struct.unpack("!i", await reader.readexactly(4))[0]
        upstream.write(struct.pack("!i", length) + await reader.readexactly(length - 4))
        while True:
            head = await reader.readexactly(5)
            body = await reader.readexactly(struct.unpack("!i", head[1:])[0] - 4)
            if head[:1] == b"Q" and body.lstrip().upper().startswith(b"COMMIT") and self._armed:
                cut, self._armed = self._armed, None
                self.cuts.append(cut)
                if cut is Cut.BEFORE_COMMIT:
                    raise _Cut
                swallow.set()
            upstream.write(head + body)
            await upstream.drain()

    async def _backend(
        self, reader: asyncio.StreamReader, client: asyncio.StreamWriter, swallow: asyncio.Event
    ) -> None:
        while True:
            head = await reader.readexactly(5)
            body = await reader.readexactly(struct.unpack("!i", head[1:])[0] - 4)
            if swallow.is_set() and head[:1] == b"C" and body.startswith(b"COMMIT"):
                raise _Cut  # committed: the client never hears it
            client.write(head + body)
            await client.drain()


class _Cut(Exception):
    pass
