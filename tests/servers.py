"""A real HTTP server on 127.0.0.1 that answers from a script: for Stella's failure modes, and the paths
Intercom's client asks for; and an address on 127.0.0.1 where nothing answers."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict


class ScriptedServer:
    def __init__(self, answers: list[Answer]) -> None:
        self.answers = list(answers)
        self.received: list[Received] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) or b"{}"
                try:
                    self.answer(json.loads(raw))
                except ValueError:  # a form, as Intercom's OAuth token exchange posts
                    self.answer({"form": raw.decode(errors="replace")})

            def do_GET(self) -> None:  # noqa: N802
                self.answer({})

            def answer(self, body: dict) -> None:
                with server.lock:
                    server.received.append(Received(self.path, dict(self.headers), body))
                    answer = server.answers.pop(0) if len(server.answers) > 1 else server.answers[0]
                time.sleep(answer.delay)
                payload = json.dumps(answer.body if answer.body is not None else body).encode()
                try:
                    self.send_response(answer.status)
                    for name, value in {"Content-Type": "application/json", **answer.headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting, as a timeout test wants

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@contextmanager
def scripted_stella(*answers: Answer) -> Iterator[ScriptedServer]:
    server = ScriptedServer(list(answers))
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


@contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 where a connection is refused, for as long as the block runs: a socket holds it, bound but
    never listening, so nothing else can take it meanwhile (no fixed port is safe to assume free: something may
    listen on 9, the discard port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]
