"""A tiny OpenAI-compatible server on 127.0.0.1 that answers whatever a test asks for.

The only stand-in in the hostile-model tests, and it sits at the network edge: workers,
the ``openai`` SDK and httpx are the real ones. Each *route* is a path prefix with a script
of replies (the last one repeats), so one server serves several scenarios at once and a
route's base URL (``server.url("html")`` → ``http://127.0.0.1:PORT/html/v1``) names its
scenario. Every request, to any path (webhooks too), is recorded with its headers,
``Authorization`` included::

    with FakeLLMServer() as server:
        base = server.route("big", chat("x" * 1_000_000))
        ...
        assert server.requests_to("big")[0].headers["authorization"] == "Bearer sk-..."
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One scripted answer: status, raw body bytes, headers; ``hang`` never answers; ``cut_at``
    announces the whole body but closes the connection after that many bytes of it."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    cut_at: int | None = None


def chat(text: str, *, model: str = "fake-model", finish_reason: str = "stop") -> Reply:
    """A well-formed chat completion whose message is ``text``."""
    body = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
    return raw(json.dumps(body).encode(), "application/json")


def raw(body: bytes | str, content_type: str = "application/json", status: int = 200,
        headers: dict[str, str] | None = None) -> Reply:
    """Any bytes with any status (an HTML page with 200, truncated JSON...)."""
    data = body.encode() if isinstance(body, str) else body
    return Reply(status, data, {"Content-Type": content_type, **(headers or {})})


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """An OpenAI-shaped error (429 with ``Retry-After``, 500...)."""
    return raw(json.dumps({"error": {"message": message, "type": "fake", "code": None}}), status=status,
               headers=headers)


def cut(reply: Reply, at: int) -> Reply:
    """``reply``, but the connection closes after ``at`` bytes of its body (a server dying mid-reply)."""
    return Reply(reply.status, reply.body, reply.headers, cut_at=at)


def hang() -> Reply:
    """Never answer (until the server closes)."""
    return Reply(hang=True)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self):
        return json.loads(self.body or b"null")


class FakeLLMServer:
    """The server, started on construction in a daemon thread; :meth:`close` stops it."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._routes: dict[str, list[Reply]] = {}
        self._responders: dict[str, Callable[[Request], Reply]] = {}
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                reply = server._reply_for(request)
                if reply.hang:
                    server._closing.wait(120)
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                try:
                    self.wfile.write(reply.body if reply.cut_at is None else reply.body[:reply.cut_at])
                except (BrokenPipeError, ConnectionResetError):
                    pass
                if reply.cut_at is not None:
                    self.close_connection = True

            do_GET = do_POST = _handle

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    super().handle_error(request, client_address)  # clients hanging up are no news

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    # -- scripting ------------------------------------------------------------------------
    def url(self, name: str) -> str:
        """The OpenAI base URL of route ``name``."""
        return f"http://127.0.0.1:{self.port}/{name}/v1"

    def route(self, name: str, *script: Reply) -> str:
        """Answer requests under ``/name/`` with ``script`` (the last reply repeats); its base URL."""
        with self._lock:
            self._routes[name] = list(script) or [chat("ok")]
            self._served[name] = 0
        return self.url(name)

    def respond(self, name: str, responder: Callable[["Request"], Reply]) -> str:
        """Answer requests under ``/name/`` with ``responder(request)`` (a model whose reply depends
        on the prompt: the referee's question and the character's get different answers); its base URL."""
        with self._lock:
            self._responders[name] = responder
        return self.url(name)

    def _reply_for(self, request: Request) -> Reply:
        name = request.path.lstrip("/").split("/", 1)[0]
        with self._lock:
            self.requests.append(request)
            responder = self._responders.get(name)
            if responder is not None:
                return responder(request)
            script = self._routes.get(name)
            if not script:
                return error(404, f"no route {name!r}")
            n = self._served[name]
            self._served[name] = n + 1
            return script[min(n, len(script) - 1)]

    def requests_to(self, name: str) -> list[Request]:
        """Requests recorded under ``/name/`` (any method)."""
        with self._lock:
            return [r for r in self.requests if r.path.lstrip("/").split("/", 1)[0] == name]

    def wait_for(self, name: str, n: int = 1, timeout: float = 10.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.requests_to(name)) < n:
            time.sleep(0.02)
        return self.requests_to(name)

    # -- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "FakeLLMServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
