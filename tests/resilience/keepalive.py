"""One HTTP/1.1 connection reused request after request, to prove the server kept it open.

httpx would silently open a new connection when the server closed the old one; this client
cannot: a response that closes the connection fails the next request (h11 checks that both
sides may start another cycle).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import h11


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class KeepAliveClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._h11 = h11.Connection(our_role=h11.CLIENT)
        self.requests = 0

    @classmethod
    async def open(cls, base_url: str) -> KeepAliveClient:
        parts = urlsplit(base_url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer)

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()

    async def post_json(
        self, path: str, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> RawResponse:
        body = json.dumps(payload).encode()
        if self.requests:
            # Raises if either side has to close the connection after the last exchange.
            self._h11.start_next_cycle()
        self.requests += 1
        request = h11.Request(
            method="POST",
            target=path,
            headers=[
                ("host", "test"),
                ("content-type", "application/json"),
                ("content-length", str(len(body))),
                *(headers or {}).items(),
            ],
        )
        out = self._h11.send(request) or b""
        out += self._h11.send(h11.Data(data=body)) or b""
        out += self._h11.send(h11.EndOfMessage()) or b""
        self._writer.write(out)
        await self._writer.drain()
        status, response_headers, chunks = 0, {}, []
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                self._h11.receive_data(await self._reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                response_headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return RawResponse(status, response_headers, b"".join(chunks))
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the server closed the connection")
