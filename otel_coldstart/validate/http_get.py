"""One HTTP GET with a total deadline (standard library only).

A socket timeout bounds each read, not the request: a server trickling one byte a second never
trips it. Here a watchdog timer shuts the socket down when the deadline passes, which wakes any
blocked read at once, so connect + headers + body together never take longer than ``timeout``.
Redirects are followed (within the same deadline) and ``http_proxy``/``https_proxy``/``no_proxy``
are honoured, as urllib would.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

MAX_REDIRECTS = 5
READ_CHUNK = 1 << 16


class DeadlineExceeded(TimeoutError):
    """The whole request (connect, headers, body) did not complete within its deadline."""


class BodyTooLarge(ValueError):
    """The answer is larger than the caller accepts."""


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes


def get(
    url: str,
    timeout: float,
    headers: dict[str, str] | None = None,
    max_body: int = 1 << 30,
    on_chunk: Callable[[bytes], None] | None = None,
) -> Answer:
    """GET ``url``; the body is returned, or passed chunk by chunk to ``on_chunk`` (then empty).

    Raises ``DeadlineExceeded``, ``BodyTooLarge``, ``OSError`` or ``http.client.HTTPException``.
    """
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        answer, location = _get_once(url, deadline, timeout, headers or {}, max_body, on_chunk)
        if location is None:
            return answer
        url = urllib.parse.urljoin(url, location)
    raise http.client.HTTPException(f"more than {MAX_REDIRECTS} redirects")


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    https = parts.scheme == "https"
    cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
    target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        proxied = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if https:
            conn = cls(proxied.hostname or "", proxied.port, timeout=timeout)
            conn.set_tunnel(parts.hostname or "", parts.port)
            return conn, target
        return http.client.HTTPConnection(proxied.hostname or "", proxied.port, timeout=timeout), url
    return cls(parts.hostname or "", parts.port, timeout=timeout), target


def _get_once(
    url: str,
    deadline: float,
    timeout: float,
    headers: dict[str, str],
    max_body: int,
    on_chunk: Callable[[bytes], None] | None,
) -> tuple[Answer, str | None]:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceeded(f"no complete answer within {timeout:g} s")
    conn, target = _connection(url, remaining)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(remaining, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("GET", target, headers=headers)
        if expired.is_set():  # the deadline passed while connecting: the socket came too late
            raise DeadlineExceeded(f"no complete answer within {timeout:g} s")
        response = conn.getresponse()
        if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
            return Answer(response.status, "", b""), response.getheader("Location")
        parts = []
        size = 0
        for chunk in _chunks(response):
            size += len(chunk)
            if size > max_body:
                raise BodyTooLarge(f"answer larger than {max_body >> 20} MB")
            if on_chunk is not None and response.status == 200:
                on_chunk(chunk)
            else:
                parts.append(chunk)
        return Answer(response.status, response.getheader("Content-Type", "") or "", b"".join(parts)), None
    except (OSError, http.client.HTTPException, ValueError):
        if expired.is_set():
            raise DeadlineExceeded(f"no complete answer within {timeout:g} s") from None
        raise
    finally:
        watchdog.cancel()
        conn.close()


def _chunks(response: http.client.HTTPResponse) -> Iterator[bytes]:
    while True:
        chunk = response.read(READ_CHUNK)
        if not chunk:
            return
        yield chunk
