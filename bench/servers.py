"""The servers under test.  Each knows how to start, load to a scale,
and which URL paths to measure.  Loading differs by server (see README):

* palisade:   every file uploaded over HTTP (POST /legacy/), 8 concurrent.
* pypiserver: wheels copied into its package folder (how pypiserver is fed),
              then the last ``peer_upload_projects`` projects uploaded over
              HTTP to measure its upload rate at that scale.
* devpi:      a devpi export directory is generated and loaded with
              `devpi-import` into a fresh server dir, then the last
              ``peer_upload_projects`` projects are uploaded over HTTP.
* nginx:      palisade's own pages saved as static files (ceiling).
"""

from __future__ import annotations

import base64
import hmac
import html
import json
import os
import re
import secrets
import shutil
import struct
import subprocess
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import devpi_export
import uploader
from procs import HOST, JSON_ACCEPT, ServerProcess, fetch_many, free_port, http_get, http_json
from wheels import Wheel, project_name


class Server:
    name = "?"
    supports_json = True
    # A project's web page at PyPI's path (/project/<name>/): Palisade's, and nginx serving it.
    supports_web = False
    ready_path = "/simple/"
    simple_path = "/simple/"

    def __init__(self, ctx):
        self.ctx = ctx  # run context: dirs, options, log()
        self.port = free_port()
        self.proc: ServerProcess | None = None
        self.notes: list[str] = []

    # --- paths -----------------------------------------------------------
    def project_path(self, name: str) -> str:
        return f"/simple/{name}/"

    def file_path(self, name: str) -> str | None:
        """Path of the first file the project's simple page lists."""
        if self.supports_json:
            st, _, body = http_get(self.port, self.project_path(name), {"Accept": JSON_ACCEPT}, timeout=60)
            if st != 200:
                return None
            files = json.loads(body)["files"]
            url = sorted(files, key=lambda f: f["filename"])[0]["url"]
        else:
            st, _, body = http_get(self.port, self.project_path(name), timeout=60)
            if st != 200:
                return None
            hrefs = re.findall(r'href="([^"]+)"', body.decode())
            url = sorted(hrefs, key=lambda h: h.split("#")[0].rsplit("/", 1)[-1])[0]
        full = urljoin(f"http://{HOST}:{self.port}{self.project_path(name)}", html.unescape(url))
        parts = urlsplit(full)
        if parts.hostname not in (HOST, "localhost") or (parts.port or 80) != self.port:
            self.notes.append(f"file URL points elsewhere: {full}")
            return None
        return parts.path + (f"?{parts.query}" if parts.query else "")

    # --- lifecycle -------------------------------------------------------
    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict | None:
        return None

    def start(self, timeout_s: float = 180.0) -> float:
        assert self.proc is None or self.proc.popen.poll() is not None
        self.proc = ServerProcess(self.name, self.argv(), self.ctx.run_dir / f"{self.name}.log", env=self.env())
        self.proc.start()
        try:
            return self.proc.wait_ready(self.port, self.ready_path, timeout_s)
        except Exception:
            self.proc.stop()
            raise

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def rss(self) -> dict:
        return self.proc.rss()

    # --- loading ---------------------------------------------------------
    def load_to(self, scale: int, wheels: list[Wheel], prev_scale: int) -> dict:
        """Bring the server to `scale` projects and leave it running.
        Returns facts about loading: startup time, upload rates, ..."""
        raise NotImplementedError


def _upload_blocks(srv: Server, url: str, wheels: list[Wheel], auth, block_projects: int, conc: int, log) -> list[dict]:
    """Upload wheels in blocks of `block_projects` projects, timing each."""
    blocks = []
    by_project: dict[int, list[Wheel]] = {}
    for w in wheels:
        by_project.setdefault(w.index, []).append(w)
    idx = sorted(by_project)
    for b in range(0, len(idx), block_projects):
        chunk = idx[b : b + block_projects]
        ws = [w for i in chunk for w in by_project[i]]
        r = uploader.upload(url, ws, auth=auth, concurrency=conc, deadline_s=srv.ctx.upload_deadline_s)
        d = r.as_dict()
        d["projects"] = [chunk[0], chunk[-1]]
        blocks.append(d)
        log(
            f"    uploaded projects {chunk[0]}-{chunk[-1]}: {r.ok}/{len(ws)} files in {r.seconds:.1f}s "
            f"= {r.rate:.1f} files/s" + (f"  FAILED {r.failed}: {r.first_error[:200]}" if r.failed else "")
            + ("  (deadline hit)" if r.timed_out else "")
        )
        if r.ok == 0:
            raise RuntimeError(f"{srv.name}: uploads fail: {r.first_error}")
    return blocks


def totp(secret_b32: str, at: float | None = None) -> str:
    """The RFC 6238 code (SHA-1, 6 digits, 30 s steps) an authenticator app would show."""
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    counter = int((time.time() if at is None else at) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), "sha1").digest()
    o = digest[-1] & 0x0F
    return f"{(struct.unpack('>I', digest[o:o + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


class Palisade(Server):
    supports_web = True
    name = "palisade"
    ready_path = "/healthz"
    user = "bench"

    def __init__(self, ctx, binary: Path, name: str = "palisade", extra_env: dict[str, str] | None = None):
        super().__init__(ctx)
        self.name = name
        self.binary = binary
        self.data = ctx.run_dir / f"{name}-data"
        self.extra_env = extra_env or {}
        self.token = ""
        self.started_once = False

    def env(self) -> dict | None:
        """The environment of the server and its CLI: this one's, plus the layout's settings
        (PALISADE_DATABASE_URL, PALISADE_STORAGE_URL, AWS_*) when given."""
        return {**os.environ, **self.extra_env} if self.extra_env else None

    def _cli(self, *args: str, stdin: str | None = None) -> str:
        cp = subprocess.run(
            [str(self.binary), "--data-dir", str(self.data), *args],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env(),
        )
        if cp.returncode != 0:
            raise RuntimeError(f"palisade {' '.join(args)} failed rc={cp.returncode}: {cp.stderr.strip()[:500]}")
        return cp.stdout

    def _api(self, path: str, body: dict, session: str | None = None) -> dict:
        st, answer = http_json(self.port, "POST", path, body,
                               {"Authorization": f"Bearer {session}"} if session else None)
        if st != 200:
            raise RuntimeError(f"palisade POST {path} answered {st}: {json.dumps(answer)[:300]}")
        return answer

    def init(self) -> float:
        """A fresh data dir and the benchmark's publisher, set up as a person would under the
        default policy, which wants a second factor and a verified address before it issues a
        token: the account from the CLI with a password and an address the administrator vouches
        for, a TOTP factor enrolled over the HTTP API (login, begin, confirm with a code), then
        the token from the CLI. Leaves the server running; returns its first start-up time."""
        if self.data.exists():
            shutil.rmtree(self.data)
        self.data.mkdir(parents=True)
        password = f"bench-{secrets.token_urlsafe(16)}-Quartz!"
        self._cli("user", "create", self.user, "--admin", "--email", f"{self.user}@example.test",
                  "--email-verified", "--password-stdin", stdin=password + "\n")
        startup = self.start()
        login = self._api("/api/login", {"login": self.user, "password": password})
        if login.get("second_factor_required") or "session" not in login:
            raise RuntimeError(f"palisade login of a new user did not open a session: {sorted(login)}")
        session = login["session"]
        begun = self._api("/api/account/2fa/totp", {"password": password}, session)
        self._api(begun["confirm"], {"code": totp(begun["secret"])}, session)
        out = self._cli("token", "create", "--user", self.user).strip().splitlines()
        if not out:
            raise RuntimeError("palisade token create printed nothing")
        self.token = out[-1].strip()
        return startup

    def argv(self) -> list[str]:
        return [str(self.binary), "--data-dir", str(self.data), "serve", "--listen", f"{HOST}:{self.port}"]

    def load_to(self, scale, wheels, prev_scale):
        info: dict = {"method": "HTTP upload (POST /legacy/), light uploader"}
        if prev_scale == 0:
            info["startup_empty_s"] = self.init()
        else:
            info["startup_before_load_s"] = self.start()
        new = [w for w in wheels if prev_scale < w.index <= scale]
        t0 = time.monotonic()
        blocks = _upload_blocks(
            self,
            f"http://{HOST}:{self.port}/legacy/",
            new,
            uploader.basic_auth("__token__", self.token),
            self.ctx.block_projects,
            self.ctx.upload_concurrency,
            self.ctx.log,
        )
        ok = sum(b["ok"] for b in blocks)
        secs = time.monotonic() - t0
        info["upload_blocks"] = blocks
        info["upload_files"] = ok
        info["upload_total_s"] = round(secs, 2)
        info["upload_files_per_s"] = round(ok / secs, 1) if secs else 0
        return info

    def upload_auth(self):
        return ("__token__", self.token)

    def upload_url(self) -> str:
        return f"http://{HOST}:{self.port}/legacy/"


class PyPIServer(Server):
    name = "pypiserver"
    supports_json = False

    def __init__(self, ctx):
        super().__init__(ctx)
        self.pkgdir = ctx.run_dir / "pypiserver-packages"

    def argv(self) -> list[str]:
        # -a . -P . : no authentication, so the upload sample needs no htpasswd.
        # --server auto picks waitress (installed); the 'auto' backend picks the
        # cached-dir backend because watchdog (pypiserver[cache]) is installed.
        return [
            str(self.ctx.venv_bin / "pypi-server"),
            "run",
            "-i",
            HOST,
            "-p",
            str(self.port),
            "-a",
            ".",
            "-P",
            ".",
            "--server",
            "auto",
            "--backend",
            "auto",
            str(self.pkgdir),
        ]

    def load_to(self, scale, wheels, prev_scale):
        k = self.ctx.peer_upload_projects
        if prev_scale == 0 and self.pkgdir.exists():
            shutil.rmtree(self.pkgdir)
        self.pkgdir.mkdir(parents=True, exist_ok=True)
        copy = [w for w in wheels if prev_scale < w.index <= scale - k]
        up = [w for w in wheels if scale - k < w.index <= scale]
        t0 = time.monotonic()
        for w in copy:
            shutil.copyfile(w.path, self.pkgdir / w.filename)
        info: dict = {
            "method": f"wheels copied into the package folder; last {k} projects uploaded over HTTP",
            "copied_files": len(copy),
            "copy_s": round(time.monotonic() - t0, 2),
        }
        info["startup_s"] = self.start()
        r = uploader.upload(f"http://{HOST}:{self.port}/", up, concurrency=self.ctx.upload_concurrency, deadline_s=self.ctx.upload_deadline_s)
        info["upload_sample"] = r.as_dict()
        info["upload_files_per_s"] = round(r.rate, 2)
        self.ctx.log(f"    uploaded last {k} projects: {r.ok}/{len(up)} files in {r.seconds:.1f}s = {r.rate:.1f} files/s"
                     + (f"  FAILED {r.failed}: {r.first_error[:200]}" if r.failed else ""))
        return info

    def upload_auth(self):
        return ("bench", "bench")  # ignored: -a . -P .

    def upload_url(self) -> str:
        return f"http://{HOST}:{self.port}/"


class Devpi(Server):
    name = "devpi"
    user, index, password = "root", "bench", "bench-pass"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.serverdir = ctx.run_dir / "devpi-server"
        self.export = ctx.run_dir / "devpi-export"
        self.simple_path = f"/{self.user}/{self.index}/+simple/"
        self.ready_path = self.simple_path

    def project_path(self, name: str) -> str:
        return f"{self.simple_path}{name}/"

    def argv(self) -> list[str]:
        return [
            str(self.ctx.venv_bin / "devpi-server"),
            "--serverdir",
            str(self.serverdir),
            "--listen",
            f"{HOST}:{self.port}",
            "--secretfile",
            str(self.ctx.run_dir / "devpi-secret"),
            "--offline-mode",
        ]

    def _venv_py(self, code: str) -> str:
        cp = subprocess.run([str(self.ctx.venv_bin / "python"), "-c", code], capture_output=True, text=True, timeout=120)
        if cp.returncode != 0:
            raise RuntimeError(cp.stderr)
        return cp.stdout.strip()

    def load_to(self, scale, wheels, prev_scale):
        k = self.ctx.peer_upload_projects
        imp = [w for w in wheels if w.index <= scale - k]
        up = [w for w in wheels if scale - k < w.index <= scale]
        secret = self.ctx.run_dir / "devpi-secret"
        if not secret.exists():
            subprocess.run([str(self.ctx.venv_bin / "devpi-gen-secret"), "--secretfile", str(secret)],
                           capture_output=True, timeout=60, check=True)
        meta = json.loads(self._venv_py(
            "import json,sys,argon2,devpi_server;"
            f"print(json.dumps([argon2.PasswordHasher().hash({self.password!r}),devpi_server.__version__,list(sys.version_info)]))"
        ))
        t0 = time.monotonic()
        devpi_export.write_export(
            self.export, imp, user=self.user, pwhash=meta[0], index=self.index,
            devpi_version=meta[1], python_version=meta[2],
        )
        t_export = time.monotonic() - t0
        if self.serverdir.exists():
            shutil.rmtree(self.serverdir)
        t0 = time.monotonic()
        cp = subprocess.run(
            [str(self.ctx.venv_bin / "devpi-import"), "--serverdir", str(self.serverdir), "--no-root-pypi",
             "--hard-links", str(self.export)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=self.ctx.devpi_import_timeout_s,
        )
        t_import = time.monotonic() - t0
        (self.ctx.run_dir / "devpi-import.log").write_text(cp.stdout + cp.stderr)
        if cp.returncode != 0:
            raise RuntimeError(f"devpi-import failed rc={cp.returncode}: {(cp.stdout + cp.stderr)[-800:]}")
        shutil.rmtree(self.export)
        self.ctx.log(f"    devpi-import of {len(imp)} files: {t_import:.1f}s ({len(imp) / t_import:.0f} files/s)")
        info: dict = {
            "method": f"devpi-import of a generated export ({len(imp)} files); last {k} projects uploaded over HTTP",
            "import_files": len(imp),
            "import_s": round(t_import, 2),
            "export_write_s": round(t_export, 2),
        }
        info["startup_s"] = self.start()
        r = uploader.upload(
            f"http://{HOST}:{self.port}/{self.user}/{self.index}/", up,
            auth=uploader.basic_auth(self.user, self.password),
            concurrency=self.ctx.upload_concurrency, deadline_s=self.ctx.upload_deadline_s,
        )
        info["upload_sample"] = r.as_dict()
        info["upload_files_per_s"] = round(r.rate, 2)
        self.ctx.log(f"    uploaded last {k} projects: {r.ok}/{len(up)} files in {r.seconds:.1f}s = {r.rate:.1f} files/s"
                     + (f"  FAILED {r.failed}: {r.first_error[:200]}" if r.failed else ""))
        return info

    def upload_auth(self):
        return (self.user, self.password)

    def upload_url(self) -> str:
        return f"http://{HOST}:{self.port}/{self.user}/{self.index}/"


NGINX_CONF = """\
{user_line}
worker_processes 2;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    types {{
        text/html html;
        application/vnd.pypi.simple.v1+json json;
        application/octet-stream whl;
    }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 65;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    # Content negotiation like a PEP 691 server: JSON when asked for it.
    map $http_accept $simple_index {{
        default index.html;
        "~*application/vnd\\.pypi\\.simple\\.v1\\+json" index.json;
    }}
    server {{
        listen {host}:{port} backlog=4096;
        root {dir}/www;
        location = /healthz {{ return 200 "ok"; }}
        # Accepts and discards an upload: measures the load client's ceiling.
        location = /upload-sink {{ client_max_body_size 16m; return 200 "ok"; }}
        location /simple/ {{ index $simple_index; }}
        location /files/ {{ }}
        location /project/ {{ index index.html; }}
    }}
}}
"""


class Nginx(Server):
    name = "nginx"
    supports_web = True

    def __init__(self, ctx):
        super().__init__(ctx)
        self.dir = ctx.run_dir / "nginx"
        self.source = ""

    def argv(self) -> list[str]:
        return [self.ctx.nginx_bin, "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir)]

    def file_path(self, name: str) -> str | None:
        return self._file_path

    def build(self, scale: int, wheels: list[Wheel], pages: dict | None, sample: str) -> None:
        """pages: from palisade: {"simple_html": bytes, "simple_json": bytes,
        "projects_html": {name: bytes}, "project_json": {name: bytes}}.
        None: synthesize PEP 503/691 pages of the same shape."""
        if self.dir.exists():
            shutil.rmtree(self.dir)
        www = self.dir / "www"
        for sub in ("tmp", "www/simple", "www/files"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        names = [project_name(i) for i in range(1, scale + 1)]
        files_by = {}
        for w in wheels:
            if w.index <= scale:
                files_by.setdefault(w.name, []).append(w)
        if pages is None:
            self.source = "synthesized PEP 503/691 pages (palisade not in this run)"
            pages = {"projects_html": {}, "project_json": {}}
            links = "".join(f'<a href="{n}/">{n}</a>\n' for n in names)
            pages["simple_html"] = (
                "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\">"
                f"<title>Simple index</title></head><body>\n{links}</body></html>\n"
            ).encode()
            pages["simple_json"] = json.dumps(
                {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
            ).encode()
            for n in names:
                fl = files_by[n]
                a = "".join(
                    f'<a href="/files/{w.filename}#sha256={w.sha256}" data-requires-python="&gt;=3.8">{w.filename}</a><br>\n'
                    for w in fl
                )
                pages["projects_html"][n] = (
                    f"<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\">"
                    f"<title>Links for {n}</title></head><body><h1>Links for {n}</h1>\n{a}</body></html>\n"
                ).encode()
            fl = files_by[sample]
            pages["project_json"][sample] = json.dumps({
                "meta": {"api-version": "1.1"}, "name": sample, "versions": [w.version for w in fl],
                "files": [{"filename": w.filename, "url": f"/files/{w.filename}", "hashes": {"sha256": w.sha256},
                           "requires-python": ">=3.8", "size": w.size} for w in fl],
            }).encode()
        else:
            self.source = "palisade's own pages, saved as static files"
        (www / "simple/index.html").write_bytes(pages["simple_html"])
        (www / "simple/index.json").write_bytes(pages["simple_json"])
        for n, body in pages["projects_html"].items():
            d = www / "simple" / n
            d.mkdir(exist_ok=True)
            (d / "index.html").write_bytes(body)
        for n, body in pages["project_json"].items():
            d = www / "simple" / n
            d.mkdir(exist_ok=True)
            (d / "index.json").write_bytes(body)
        for n, body in pages.get("web_project", {}).items():
            d = www / "project" / n
            d.mkdir(parents=True, exist_ok=True)
            (d / "index.html").write_bytes(body)
        first = sorted(files_by[sample], key=lambda w: w.filename)[0]
        shutil.copyfile(first.path, www / "files" / first.filename)
        self._file_path = f"/files/{first.filename}"
        self.project_names = sorted(pages["projects_html"])
        user_line = "user root;" if os.geteuid() == 0 else ""
        (self.dir / "nginx.conf").write_text(
            NGINX_CONF.format(user_line=user_line, dir=self.dir, host=HOST, port=self.port)
        )

    def load_to(self, scale, wheels, prev_scale):
        return {"method": self.source, "startup_s": self.start()}


def save_palisade_pages(p: Palisade, scale: int, sample: str, log) -> dict:
    """Fetch palisade's /simple/ (HTML+JSON), every project's HTML page and
    the sample's JSON page, for nginx to serve as static files."""
    st, _, simple_html = http_get(p.port, "/simple/", timeout=60)
    st2, _, simple_json = http_get(p.port, "/simple/", {"Accept": JSON_ACCEPT}, timeout=60)
    if st != 200 or st2 != 200:
        raise RuntimeError(f"palisade /simple/ answered {st}/{st2}")
    names = [project_name(i) for i in range(1, scale + 1)]
    t0 = time.monotonic()
    got = fetch_many(p.port, [p.project_path(n) for n in names], deadline_s=300)
    projects_html = {n: got[p.project_path(n)] for n in names if p.project_path(n) in got}
    st3, _, pj = http_get(p.port, p.project_path(sample), {"Accept": JSON_ACCEPT})
    st4, _, web = http_get(p.port, f"/project/{sample}/")
    if st4 != 200:
        raise RuntimeError(f"palisade /project/{sample}/ answered {st4}")
    log(f"    saved {len(projects_html)}/{len(names)} palisade project pages for nginx in {time.monotonic() - t0:.1f}s")
    if sample not in projects_html or st3 != 200:
        raise RuntimeError("could not save palisade's sample project page")
    # Rewrite file links? No: nginx serves the pages verbatim; the file
    # download endpoint is measured on /files/<wheel> separately.
    return {"simple_html": simple_html, "simple_json": simple_json, "projects_html": projects_html,
            "project_json": {sample: pj}, "web_project": {sample: web}}
