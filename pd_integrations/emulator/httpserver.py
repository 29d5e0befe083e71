"""The socket side: a threading HTTP/1.1 server with keep-alive and optional TLS.

Only the standard library is used, so the faults are real: a dropped request is a
closed TCP connection, latency is a handler that really waits. The handler turns bytes
into an :class:`~.api.Request` and an :class:`~.api.Response` back into bytes; all
behaviour lives in :class:`~.api.App`.
"""

from __future__ import annotations

import contextlib
import json
import re
import selectors
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import rules
from .api import App, Request, Response, json_response

# A body above PagerDuty's 512 KB limit is still read (and thrown away) up to this size,
# so the client gets its 400 instead of a reset connection; beyond it the server
# answers at once and closes the connection.
DISCARD_LIMIT = 1024 * 1024
IDLE_TIMEOUT = 60.0  # keep-alive connections waiting for their next request
BODY_TIMEOUT = 5.0  # a Content-Length larger than what is sent must not hang a thread
HANDSHAKE_TIMEOUT = 5.0
MAX_CHUNK_LINE = 1024
MAX_TRAILER_LINES = 64
INCOMPLETE_BODY = "Request body is incomplete or malformed"
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pd-emulator"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    # Headers and body are separate writes; without this, Nagle's algorithm and delayed
    # ACKs would add ~40 ms to every keep-alive answer.
    disable_nagle_algorithm = True
    server: EmulatorServer

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            # The handshake runs here, on the connection's own thread, never in the
            # accept loop, where one slow client would stall everyone.
            self.request.settimeout(HANDSHAKE_TIMEOUT)
            self.request.do_handshake()
        super().setup()

    def do_GET(self) -> None:
        self._serve()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _serve(self) -> None:
        body, size, body_error = self._read_body()
        target = urlsplit(self.path)
        request = Request(
            method="GET" if self.command == "HEAD" else self.command,
            path=unquote(target.path) or "/",
            query=parse_qs(target.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            content_type=self.headers.get("Content-Type"),
            body=body,
            size=size,
            body_error=body_error,
        )
        try:
            response = self.server.app.handle(request)
        except Exception:  # a bug in the emulator: say so rather than hang up
            self.server.handle_error(self.request, self.client_address)
            response = json_response(500, {"error": "internal emulator error"})
        if response.delay > 0 and self.server.stopping.wait(response.delay):
            response.drop = True  # stopping: do not answer late
        if response.drop:
            self.close_connection = True
            return
        self._write(response)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    # -- request bodies ----------------------------------------------------------------

    def _read_body(self) -> tuple[bytes, int, str | None]:
        """``(body, size, error)``; on an error the body is empty."""
        encoding = self.headers.get("Transfer-Encoding")
        lengths = self.headers.get_all("Content-Length") or []
        if encoding is not None:
            if encoding.strip().lower() != "chunked" or lengths:
                self.close_connection = True
                return b"", 0, INCOMPLETE_BODY
            return self._with_body_timeout(self._read_chunked)
        if not lengths:
            return b"", 0, None
        values = {value.strip() for value in lengths}
        text = values.pop()
        if values or not (text.isascii() and text.isdigit()):
            self.close_connection = True
            return b"", 0, INCOMPLETE_BODY
        length = int(text)
        if length > DISCARD_LIMIT:
            self.close_connection = True
            return b"", length, rules.BODY_TOO_LARGE
        return self._with_body_timeout(lambda: self._read_exact(length))

    def _with_body_timeout(
        self, read: Callable[[], tuple[bytes, int, str | None]]
    ) -> tuple[bytes, int, str | None]:
        self.connection.settimeout(BODY_TIMEOUT)
        try:
            body, size, error = read()
        except (OSError, ValueError):
            body, size, error = b"", 0, INCOMPLETE_BODY
        finally:
            self.connection.settimeout(self.timeout)
        if error == INCOMPLETE_BODY:
            self.close_connection = True
        elif error is None and size > rules.MAX_BODY_BYTES:
            body, error = b"", rules.BODY_TOO_LARGE
        return body, size, error

    def _read_exact(self, length: int) -> tuple[bytes, int, str | None]:
        data = self.rfile.read(length)
        if len(data) < length:
            return b"", len(data), INCOMPLETE_BODY
        return data, length, None

    def _read_chunked(self) -> tuple[bytes, int, str | None]:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(MAX_CHUNK_LINE + 1)
            size_text = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not _CHUNK_SIZE.fullmatch(size_text):
                return b"", total, INCOMPLETE_BODY
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > DISCARD_LIMIT:
                self.close_connection = True
                return b"", total, rules.BODY_TOO_LARGE
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(3).strip() != b"":
                return b"", total, INCOMPLETE_BODY
            chunks.append(chunk)
        for _ in range(MAX_TRAILER_LINES):
            trailer = self.rfile.readline(MAX_CHUNK_LINE + 1)
            if trailer in (b"\r\n", b"\n"):
                return b"".join(chunks), total, None
            if not trailer.endswith(b"\n"):
                break
        return b"", total, INCOMPLETE_BODY

    # -- the base class's hooks ----------------------------------------------------------

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer a request the base class could not parse.

        Those answers would include 501 (unknown method) and 505 (HTTP version): a
        malformed request is the client's fault, so they become 405 and 400.
        """
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code = HTTPStatus.METHOD_NOT_ALLOWED
        elif code >= 500:
            code = HTTPStatus.BAD_REQUEST
        self.close_connection = True
        # Unparsable request lines leave the version at HTTP/0.9, which would mean an
        # answer without a status line; a garbled request still deserves a real 400.
        self.request_version = self.protocol_version
        body = json.dumps({"error": message or HTTPStatus(code).phrase}).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"pd-emulator {self.address_string()} {format % args}\n")


class EmulatorServer(ThreadingHTTPServer):
    """Serves until stopped; tracks open connections so that stopping closes idle
    keep-alive ones instead of waiting for their clients."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        app: App,
        *,
        ssl_context: ssl.SSLContext | None = None,
        verbose: bool = False,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self.ssl_context = ssl_context
        self.verbose = verbose
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._threads_running: set[threading.Thread] = set()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._loop_done = threading.Event()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall for seconds
        # without DNS; the name is not needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.ssl_context is None:
            return sock, address
        try:
            wrapped = self.ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        except (OSError, ValueError):
            sock.close()
            raise OSError("TLS setup failed") from None
        return wrapped, address

    def process_request(self, request: Any, client_address: Any) -> None:
        # ThreadingMixIn does not keep daemon threads for server_close() to join (since
        # Python 3.11.x), so the threads are tracked here.
        thread = threading.Thread(
            target=self._handle_connection,
            args=(request, client_address),
            name=f"pd-emulator-connection:{client_address}",
            daemon=True,
        )
        with self._connections_lock:
            self._connections.add(request)
            self._threads_running.add(thread)
        thread.start()

    def _handle_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._threads_running.discard(threading.current_thread())

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-request are normal here (and some tests do it on
        # purpose): report only when asked to.
        if self.verbose:
            super().handle_error(request, client_address)

    def serve(self) -> None:
        """Accept connections until :meth:`stop`.

        Unlike ``serve_forever`` this loop has no poll interval: stop() wakes it through
        a socket pair, so stopping takes microseconds instead of up to one interval.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self.stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self.stopping.is_set():
                        self._accept()
        self._loop_done.set()

    def _accept(self) -> None:
        try:
            request, address = self.get_request()
        except OSError:  # the client gave up between select() and accept()
            return
        try:
            self.process_request(request, address)
        except Exception:
            self.handle_error(request, address)
            self.shutdown_request(request)

    def stop(self, timeout: float) -> None:
        """Stop accepting, shut every open connection, join every handler thread."""
        self.stopping.set()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")
        self._loop_done.wait(timeout)
        self._close_connections()
        self.server_close()
        deadline = time.monotonic() + timeout
        with self._connections_lock:
            threads = list(self._threads_running)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._wake_reader.close()
        self._wake_writer.close()

    def _close_connections(self) -> None:
        """Shut every open connection, waking handlers blocked on a read."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            # Below the TLS layer: an SSLSocket's own shutdown() is not thread-safe
            # against a read in progress on another thread.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(connection, socket.SHUT_RDWR)
