"""files/django_vps_uvicorn.py, the worker class of server asgi, on the real uvicorn and gunicorn that
a release gets (the versions components/render.py pins, pinned in the dev group too).

A request sent on a connection that a stopping worker had already accepted is answered: uvicorn's own
Server closes that connection unanswered (the control), which nginx turns into a 502; and gunicorn
loads the class the way run.sh starts it and keeps answering through graceful reloads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from uvicorn.server import Server

from components import render
from tests.support.figures import figure
from tests.support.runtime import FILES, load

worker_module = load("django_vps_uvicorn")
REQUEST = b"GET / HTTP/1.1\r\nHost: blog.com\r\nConnection: close\r\n\r\n"


async def hello(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


def _run(coroutine):  # type: ignore[no-untyped-def]
    """asyncio.run in a thread of its own: in this one it would leave no event loop for the Pulumi
    mock tests that run after it in the same worker (asyncio.run unsets the thread's loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def test_the_pins_are_the_releases() -> None:
    import importlib.metadata

    assert uvicorn.__version__ == render.UVICORN_VERSION
    assert importlib.metadata.version("uvicorn-worker") == render.UVICORN_WORKER_VERSION
    assert render.UVICORN_WORKER == "django_vps_uvicorn.UvicornWorker"
    assert "django_vps_uvicorn.py" in render.RUNTIME_FILES


async def _accepted(server: Server, socket_path: Path):  # type: ignore[no-untyped-def]
    """Serve, connect, and wait until the server has accepted: (the serving task, reader, writer)."""
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    reader, writer = await asyncio.open_unix_connection(str(socket_path))
    while not server.server_state.connections:
        await asyncio.sleep(0.001)
    return serving, reader, writer


async def _answer_after_stop(server_class: type[Server], http: str, socket_path: Path) -> bytes:
    """Connect, let the server accept, stop it, then send the request: what comes back."""
    config = uvicorn.Config(hello, uds=str(socket_path), http=http, lifespan="off", log_level="warning")
    server = server_class(config)
    serving, reader, writer = await _accepted(server, socket_path)
    server.should_exit = True  # what SIGTERM does (Server.handle_exit; signals are the main thread's)
    await asyncio.sleep(0.3)  # main_loop's tick (0.1 s) has begun the shutdown
    try:
        writer.write(REQUEST)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    except ConnectionError:  # closed before the request was sent
        answer = b""
    writer.close()
    await asyncio.wait_for(serving, timeout=10)
    return answer


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_a_request_on_a_connection_accepted_before_the_stop_is_answered(http: str, tmp_path: Path) -> None:
    answer = _run(_answer_after_stop(worker_module.GracefulServer, http, tmp_path / "app.sock"))
    assert answer.startswith(b"HTTP/1.1 200 ") and b"hello" in answer, answer


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_control_uvicorns_own_server_closes_that_connection_unanswered(http: str, tmp_path: Path) -> None:
    assert _run(_answer_after_stop(Server, http, tmp_path / "app.sock")) == b""


def test_an_idle_connection_does_not_hold_the_stop_for_long(tmp_path: Path) -> None:
    async def stop_with_a_silent_client() -> float:
        socket_path = tmp_path / "app.sock"
        server = worker_module.GracefulServer(uvicorn.Config(hello, uds=str(socket_path), lifespan="off"))
        serving, _, writer = await _accepted(server, socket_path)
        started = time.monotonic()
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=10)
        writer.close()
        return time.monotonic() - started

    assert _run(stop_with_a_silent_client()) < worker_module.REQUEST_START_SECONDS + 1


def _get(socket_path: Path) -> bytes:
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(10)
        client.connect(str(socket_path))
        client.sendall(REQUEST)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    return answer


def test_gunicorn_loads_the_class_as_run_sh_does_and_answers_through_reloads(tmp_path: Path) -> None:
    release = tmp_path / "current"
    release.mkdir()
    (release / "django_vps_uvicorn.py").write_text((FILES / "django_vps_uvicorn.py").read_text())
    (release / "app.py").write_text(
        "async def application(scope, receive, send):\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'hello'})\n"
    )
    socket_path = tmp_path / "app.sock"
    gunicorn = subprocess.Popen(
        [sys.executable, "-P", "-m", "gunicorn", "--chdir", str(release), "--bind", f"unix:{socket_path}",
         "--workers", "2", "--worker-class", render.UVICORN_WORKER, "app:application"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    answers: dict[str, int] = {}
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                outcome = "200" if _get(socket_path).startswith(b"HTTP/1.1 200 ") else "other"
            except OSError as error:
                outcome = type(error).__name__
            answers[outcome] = answers.get(outcome, 0) + 1

    try:
        deadline = time.monotonic() + 30
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b"hello" in _get(socket_path)
        clients = [threading.Thread(target=load) for _ in range(4)]
        for client in clients:
            client.start()
        for _ in range(5):
            os.kill(gunicorn.pid, signal.SIGHUP)
            time.sleep(1.5)
        stop.set()
        for client in clients:
            client.join()
    finally:
        stop.set()
        gunicorn.terminate()
        output = gunicorn.communicate(timeout=30)[0]
    figure(f"asgi worker class through 5 graceful reloads under load: {answers}")
    assert answers.get("200", 0) > 100 and set(answers) == {"200"}, (answers, output[-3000:])
    assert output.count("Booting worker") >= 2 + 5 * 2, output[-3000:]
