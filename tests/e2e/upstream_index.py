"""A small PEP 691 index for the mirror tests: the upstream Palisade mirrors.

It serves `/simple/<name>/` as PEP 691 JSON (with ETags and 304s), `/files/<filename>` (whole,
or one range, unless `ranges` is off), the PEP 658 `.metadata` files and PEP 740 provenance objects, every field under the test's control
(upload times, yanks, status). It counts every request by path, can hold a file's or a page's
answer back (`hold`: filename, `whole:` and a filename for the whole file but not its parts, or `page:` and the name; to line concurrent requests up) and can be stopped and started on the same port.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import http.server
import io
import json
import socket
import threading
import time
import zipfile
from dataclasses import dataclass, field


@dataclass
class UpstreamFile:
    filename: str
    data: bytes
    upload_time: dt.datetime | None
    yanked: bool | str = False
    requires_python: str | None = None
    metadata: bytes | None = None
    provenance: bytes | None = None


@dataclass
class UpstreamProject:
    name: str
    files: list[UpstreamFile] = field(default_factory=list)
    status: str | None = None


def wheel_metadata(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return zf.read(name)


class UpstreamIndex:
    def __init__(self) -> None:
        self.projects: dict[str, UpstreamProject] = {}
        self.hits: collections.Counter[str] = collections.Counter()
        self.hold: dict[str, float] = {}
        # Whether Range requests are answered (206), and how many were, by filename.
        self.ranges = True
        self.range_hits: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.port = 0
        self.httpd: http.server.ThreadingHTTPServer | None = None
        # Open connections (clients keep them alive): closed by stop(), so a stopped index is
        # unreachable, not still answering on old connections.
        self.connections: set = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    def add(self, project: str, filename: str, data: bytes, *, age: dt.timedelta | None = dt.timedelta(days=30),
            yanked: bool | str = False, requires_python: str | None = None, metadata: bool = True,
            provenance: bytes | None = None) -> UpstreamFile:
        when = None if age is None else dt.datetime.now(dt.timezone.utc) - age
        meta = wheel_metadata(data) if metadata and filename.endswith(".whl") else None
        f = UpstreamFile(filename, data, when, yanked, requires_python, meta, provenance)
        with self.lock:
            self.projects.setdefault(project, UpstreamProject(project)).files.append(f)
        return f

    def page(self, name: str) -> bytes | None:
        p = self.projects.get(name)
        if p is None:
            return None
        files = []
        for f in p.files:
            entry = {
                "filename": f.filename,
                "url": f"/files/{f.filename}",
                "hashes": {"sha256": hashlib.sha256(f.data).hexdigest()},
                "requires-python": f.requires_python,
                "yanked": f.yanked,
                "size": len(f.data),
                "core-metadata": {"sha256": hashlib.sha256(f.metadata).hexdigest()} if f.metadata else False,
                "provenance": f"/provenance/{f.filename}" if f.provenance else None,
            }
            if f.upload_time is not None:
                entry["upload-time"] = f.upload_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            files.append(entry)
        body = {"meta": {"api-version": "1.4"}, "name": p.name, "versions": [], "files": files}
        if p.status:
            body["project-status"] = {"status": p.status}
        return json.dumps(body).encode()

    def start(self) -> "UpstreamIndex":
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with index.lock:
                    index.connections.add(self.connection)

            def finish(self) -> None:
                with index.lock:
                    index.connections.discard(self.connection)
                super().finish()

            def send(self, status: int, body: bytes, ctype: str = "application/octet-stream", headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                with index.lock:
                    index.hits[path] += 1
                if path.startswith("/simple/"):
                    name = path[len("/simple/"):].strip("/")
                    time.sleep(index.hold.get(f"page:{name}", 0))
                    body = index.page(name)
                    if body is None:
                        return self.send(404, b"not found\n", "text/plain")
                    tag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                    if self.headers.get("If-None-Match") == tag:
                        return self.send(304, b"", headers={"ETag": tag})
                    return self.send(200, body, "application/vnd.pypi.simple.v1+json", {"ETag": tag})
                for prefix, pick in (("/provenance/", "provenance"), ("/files/", None)):
                    if not path.startswith(prefix):
                        continue
                    filename = path[len(prefix):]
                    want_meta = pick is None and filename.endswith(".metadata")
                    if want_meta:
                        filename = filename[: -len(".metadata")]
                    for p in index.projects.values():
                        for f in p.files:
                            if f.filename != filename:
                                continue
                            if pick == "provenance":
                                return self.send(200, f.provenance or b"", "application/vnd.pypi.integrity.v1+json")
                            if want_meta:
                                return self.send(200 if f.metadata else 404, f.metadata or b"")
                            time.sleep(index.hold.get(filename, 0))
                            rng = self.headers.get("Range")
                            if not (rng and index.ranges):
                                time.sleep(index.hold.get(f"whole:{filename}", 0))
                            if rng and index.ranges:
                                # One range, as the mirror asks: bytes=start-last.
                                start, _, last = rng.removeprefix("bytes=").partition("-")
                                start, last = int(start), min(int(last), len(f.data) - 1)
                                with index.lock:
                                    index.range_hits[filename] += 1
                                    index.hits[path] -= 1  # a part, not the file
                                return self.send(206, f.data[start:last + 1], headers={
                                    "Content-Range": f"bytes {start}-{last}/{len(f.data)}"})
                            return self.send(200, f.data)
                return self.send(404, b"not found\n", "text/plain")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        with self.lock:
            for c in list(self.connections):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.connections.clear()

    def file_hits(self, filename: str) -> int:
        return self.hits[f"/files/{filename}"]
