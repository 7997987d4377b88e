"""A light concurrent uploader: N threads, each with its own keep-alive
http.client connection, POSTing the same multipart form twine sends
(``:action=file_upload``) with pre-built bodies.  Bounded by the number of
files given and by a wall-clock deadline."""

from __future__ import annotations

import base64
import hashlib
import http.client
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from wheels import METADATA_VERSION, Wheel


@dataclass
class UploadResult:
    attempted: int = 0
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    timed_out: bool = False
    statuses: dict = field(default_factory=dict)
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "attempted": self.attempted,
            "ok": self.ok,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "files_per_s": round(self.rate, 2),
            "timed_out": self.timed_out,
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "first_error": self.first_error,
        }


def build_form(w: Wheel) -> tuple[bytes, str]:
    """The multipart/form-data body twine would send for this wheel."""
    data = w.path.read_bytes()
    boundary = "----palisadebench" + uuid.uuid4().hex
    fields = [
        (":action", "file_upload"),
        ("protocol_version", "1"),
        ("name", w.name),
        ("version", w.version),
        ("filetype", "bdist_wheel"),
        ("pyversion", "py3"),
        ("metadata_version", METADATA_VERSION),
        ("summary", f"Palisade benchmark package {w.index:05d}"),
        ("license", "Apache-2.0"),
        ("requires_python", ">=3.8"),
        ("description_content_type", "text/plain"),
        ("md5_digest", hashlib.md5(data).hexdigest()),
        ("sha256_digest", hashlib.sha256(data).hexdigest()),
        ("blake2_256_digest", hashlib.blake2b(data, digest_size=32).hexdigest()),
    ]
    parts = []
    for k, v in fields:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        )
    parts.append(
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="content"; filename="{w.filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def upload(
    url: str,
    wheels: list[Wheel],
    *,
    auth: str | None = None,
    concurrency: int = 8,
    deadline_s: float = 600.0,
    request_timeout_s: float = 60.0,
) -> UploadResult:
    """Upload each wheel once; return counts and elapsed time.  Bodies are
    built before the clock starts so the client costs as little as possible."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    assert host in ("127.0.0.1", "localhost", "::1"), "load goes to loopback only"
    path = parts.path or "/"
    bodies = [build_form(w) for w in wheels]
    q: queue.SimpleQueue = queue.SimpleQueue()
    for b in bodies:
        q.put(b)
    res = UploadResult(attempted=0)
    lock = threading.Lock()
    stop_at = time.monotonic() + deadline_s

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=request_timeout_s)
        try:
            while time.monotonic() < stop_at:
                try:
                    body, ctype = q.get_nowait()
                except queue.Empty:
                    return
                headers = {"Content-Type": ctype, "Content-Length": str(len(body))}
                if auth:
                    headers["Authorization"] = auth
                status, err = None, ""
                for attempt in range(2):  # one reconnect on a dropped keep-alive
                    try:
                        conn.request("POST", path, body=body, headers=headers)
                        r = conn.getresponse()
                        text = r.read()
                        status = r.status
                        if r.getheader("Connection", "").lower() == "close":
                            conn.close()
                        if status >= 300:
                            err = f"HTTP {status}: {text[:300]!r}"
                        break
                    except (OSError, http.client.HTTPException) as e:
                        conn.close()
                        err = f"{type(e).__name__}: {e}"
                        if attempt == 1:
                            status = "error"
                with lock:
                    res.attempted += 1
                    res.statuses[status] = res.statuses.get(status, 0) + 1
                    if isinstance(status, int) and 200 <= status < 300:
                        res.ok += 1
                    else:
                        res.failed += 1
                        if not res.first_error:
                            res.first_error = err
        finally:
            conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, stop_at - time.monotonic() + request_timeout_s + 5))
    res.seconds = time.monotonic() - t0
    res.timed_out = res.attempted < len(bodies)
    return res
