"""gunicorn's worker class for server asgi (`django_vps_uvicorn.UvicornWorker`): uvicorn-worker's, with a
graceful stop that answers every request nginx has already sent.

uvicorn's Server.shutdown (uvicorn/server.py) stops accepting and then closes each connection whose
request has not begun (`cycle is None`, the protocols' shutdown in uvicorn/protocols/http/): the idle
keep-alive ones it means, but also one accepted a moment before whose request is still unread in the
socket. nginx, having sent that request, answers 502 (seen in a deploy under load). nginx sends
`Connection: close` here, so every connection carries one request: the stop below waits, briefly, for
such connections to begin theirs, and then uvicorn's shutdown lets the begun ones finish.

deploy.sh puts a copy at the top of each release. gunicorn's master imports the class once; nothing in
it depends on the release."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterable

from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker as _UvicornWorker

# nginx writes the request as soon as it has connected, so it is normally in the socket already.
REQUEST_START_SECONDS = 2.0


def unbegun(connections: Iterable[object]) -> bool:
    """Whether an HTTP connection has been accepted and its request not yet begun (websockets have no cycle)."""
    return any(getattr(connection, "cycle", False) is None for connection in connections)


class GracefulServer(Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REQUEST_START_SECONDS
        while unbegun(self.server_state.connections) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await super().shutdown(sockets)


class UvicornWorker(_UvicornWorker):
    async def _serve(self) -> None:
        # uvicorn-worker 0.4.0's own, serving with GracefulServer.
        self.config.app = self.wsgi
        server = GracefulServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
