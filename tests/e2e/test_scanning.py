"""Malware defence end to end, with the real binary and the real clients: `palisade scan` offline
(text, JSON, SARIF, extra rules, exit codes), `palisade rules check`, and the server's scan of
every upload: twine is refused on a malicious file, a suspicious one is quarantined (pip cannot
see it, the owners are mailed, the owner reads the report, an administrator releases or confirms
it with the CLI), a typosquatted new project is held, and `palisade rescan` applies new rules to
stored files.

Every "malicious" package here is synthetic and inert: its code is a string in this file that is
written into an archive and never run. Nothing is installed except the clean wheels.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from distbuilder import SdistBuilder, WheelBuilder
from support import DROPPER_SETUP, Server, eventually

# An __init__ that sends the host name somewhere as it is imported: suspicious, not certain.
BEACON_INIT = (
    "import socket\n"
    "import urllib.request\n"
    "urllib.request.urlopen('https://telemetry.example.invalid/ping?h=' + socket.gethostname())\n"
)
MARKER = "palisade-e2e-marker-7f3a"
MARKER_RULE = f"""
rule e2e_marker_string
{{
    meta:
        id = "e2e-marker-string"
        severity = "high"
        description = "the e2e suite's marker string"
    strings:
        $m = "{MARKER}"
    condition:
        $m
}}
"""


@pytest.fixture(scope="module")
def srv(palisade_bin, tmp_path_factory, sink):
    s = Server(palisade_bin, tmp_path_factory.mktemp("srv-scanning"), "test_scanning", sink.env()).start()
    yield s
    s.stop()


def scan(binary: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), "scan", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def listed_versions(s: Server, project: str) -> list[str]:
    r = s.simple_json(project)
    return r.json()["versions"] if r.status_code == 200 else []


def expect_versions(s: Server, project: str, versions: list[str]) -> None:
    """For `eventually`, which retries only on AssertionError: the CLI's decisions reach a running
    server's page cache within a poll interval, not at once."""
    listed = listed_versions(s, project)
    assert listed == versions, listed


# ---- `palisade scan`: offline, no server, no configuration -----------------------------------


def test_scan_cli_reports_formats_and_exit_codes(palisade_bin, tmp_path):
    clean = WheelBuilder("tidy-lib", "1.0").build(tmp_path / "clean")
    bad_dir = tmp_path / "bad"
    dropper = SdistBuilder("tidy-dropper", "1.0", extra_files={"tidy_dropper-1.0/setup.py": DROPPER_SETUP.encode()}).build(bad_dir)
    beacon = WheelBuilder("tidy-beacon", "1.0", init_source=BEACON_INIT).build(bad_dir)

    r = scan(palisade_bin, str(clean), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ": CLEAN" in r.stdout, r.stdout

    # A folder is searched for distributions; anything not clean makes the exit code 1.
    r = scan(palisade_bin, str(bad_dir), cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{dropper.name}: MALICIOUS" in r.stdout and "py-install-download-exec" in r.stdout, r.stdout
    assert "setup.py:3" in r.stdout and f"{beacon.name}: SUSPICIOUS" in r.stdout, r.stdout

    # JSON: one object per file, with verdict, score and located findings.
    r = scan(palisade_bin, "--format", "json", str(clean), str(dropper), str(beacon), cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    objs = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    by_file = {Path(o["path"]).name: o for o in objs}
    assert set(by_file) == {clean.name, dropper.name, beacon.name}, by_file.keys()
    assert by_file[clean.name]["verdict"] == "clean" and by_file[clean.name]["findings"] == []
    d = by_file[dropper.name]
    assert d["verdict"] == "malicious" and d["score"] >= 10, d
    f = next(f for f in d["findings"] if f["rule"] == "py-install-download-exec")
    assert f["path"].endswith("setup.py") and f["line"] in (3, 4) and f["severity"] == "critical", f
    assert "urlretrieve" in f["excerpt"] or "os.system" in f["excerpt"], f
    assert by_file[beacon.name]["verdict"] == "suspicious", by_file[beacon.name]

    # SARIF 2.1.0 for code-scanning tools: rules and results with locations.
    r = scan(palisade_bin, "--format", "sarif", str(dropper), cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    sarif = json.loads(r.stdout)
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    assert run["tool"]["driver"]["name"].lower().startswith("palisade")
    rule_ids = {x["id"] for x in run["tool"]["driver"]["rules"]}
    results = run["results"]
    assert any(x["ruleId"] == "py-install-download-exec" for x in results), results
    assert {x["ruleId"] for x in results} <= rule_ids
    loc = next(x for x in results if x["ruleId"] == "py-install-download-exec")["locations"][0]["physicalLocation"]
    assert "setup.py" in json.dumps(loc) and loc["region"]["startLine"] in (3, 4), loc

    # Usage errors exit 2: a missing path, an unknown format, a rule folder that does not compile.
    assert scan(palisade_bin, str(tmp_path / "nope.whl"), cwd=tmp_path).returncode == 2
    assert scan(palisade_bin, "--format", "xml", str(clean), cwd=tmp_path).returncode == 2
    broken = tmp_path / "broken-rules"
    broken.mkdir()
    (broken / "bad.yar").write_text("rule broken { condition: $undefined }\n")
    r = scan(palisade_bin, "--rules", str(broken), str(clean), cwd=tmp_path)
    assert r.returncode == 2 and "bad.yar" in r.stderr, r.stderr
    r = subprocess.run([str(palisade_bin), "rules", "check", str(broken)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "bad.yar" in (r.stdout + r.stderr), r.stdout + r.stderr

    # Operator rules are compiled next to the shipped pack.
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "marker.yar").write_text(MARKER_RULE)
    r = subprocess.run([str(palisade_bin), "rules", "check", str(rules)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    marked = WheelBuilder("tidy-marked", "1.0", init_source=f'BANNER = "{MARKER}"\n').build(tmp_path / "marked")
    assert scan(palisade_bin, str(marked), cwd=tmp_path).returncode == 0
    r = scan(palisade_bin, "--format", "json", "--rules", str(rules), str(marked), cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert any(f["rule"] == "e2e-marker-string" for f in json.loads(r.stdout)["findings"]), r.stdout


# A library module that gains the network, programs and dynamic code: each is ordinary on its own,
# and none of it runs at install or import.
GAINED_UTIL = (
    "import subprocess\n"
    "import urllib.request\n"
    "\n"
    "def fetch(url):\n"
    "    return urllib.request.urlopen(url).read()\n"
    "\n"
    "def run(cmd):\n"
    "    return subprocess.run(cmd, check=False)\n"
    "\n"
    "def evaluate(expr):\n"
    "    return eval(expr)\n"
)


def release_news(report: dict) -> dict:
    return {f["rule"]: f for f in report["findings"] if f["rule"].startswith("release-new-")}


def test_scan_against_an_earlier_release_names_what_is_new(palisade_bin, tmp_path):
    old = WheelBuilder("steady-lib", "1.0", requires_dist=["requests>=2"]).build(tmp_path / "old")
    new = WheelBuilder(
        "steady-lib",
        "1.1",
        requires_dist=["requests>=2", "colorama"],
        extra_files={"steady_lib/util.py": GAINED_UTIL.encode(), "steady-lib-hook.pth": b"import steady_lib\n"},
    ).build(tmp_path / "new")

    # Alone, the new release is an ordinary library.
    alone = json.loads(scan(palisade_bin, "--format", "json", str(new), cwd=tmp_path).stdout)
    assert alone["verdict"] == "clean", alone
    assert not release_news(alone)
    caps = {c["capability"] for c in alone["capabilities"]}
    assert {"network", "process", "dynamic-code", "dependency", "pth-file", "install-exec"} <= caps, alone["capabilities"]

    # Against the one before it, what it gained is named, file and line, and holds it for review.
    r = scan(palisade_bin, "--format", "json", "--against", str(old), str(new), cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    report = json.loads(r.stdout)
    news = release_news(report)
    assert set(news) == {
        "release-new-network",
        "release-new-process",
        "release-new-dynamic-code",
        "release-new-dependency",
        "release-new-pth-file",
        "release-new-install-exec",
    }, news
    assert news["release-new-network"]["path"] == "steady_lib/util.py" and news["release-new-network"]["line"] == 2, news
    assert "urllib" in news["release-new-network"]["excerpt"], news
    assert "release 1.0" in news["release-new-process"]["message"], news
    assert "(colorama)" in news["release-new-dependency"]["message"], news
    assert report["verdict"] == "suspicious", report
    assert not any(f.get("decisive") for f in report["findings"]), report

    # The same in text and SARIF.
    r = scan(palisade_bin, "--against", str(old), str(new), cwd=tmp_path)
    assert "release-new-network" in r.stdout and "steady_lib/util.py:2" in r.stdout, r.stdout
    sarif = json.loads(scan(palisade_bin, "--format", "sarif", "--against", str(old), str(new), cwd=tmp_path).stdout)
    assert any(x["ruleId"] == "release-new-process" for x in sarif["runs"][0]["results"]), sarif

    # A capability any of the earlier releases had is not news.
    r = scan(palisade_bin, "--format", "json", "--against", str(new), "--against", str(old), str(new), cwd=tmp_path)
    assert not release_news(json.loads(r.stdout)), r.stdout


# ---- the server: every upload is scanned before it is visible --------------------------------


def test_malicious_upload_is_refused_with_the_findings(srv, clients, tmp_path):
    srv.create_user("mal-uploader")
    token = srv.create_token("mal-uploader")
    dropper = SdistBuilder("fresh-dropper", "1.0", extra_files={"fresh_dropper-1.0/setup.py": DROPPER_SETUP.encode()}).build(tmp_path)
    proc = clients.twine_upload(srv, token, dropper, check=False)
    assert "400" in proc.output and "malware scanner" in proc.output, proc.output
    assert "py-install-download-exec" in proc.output, proc.output
    assert srv.simple_json("fresh-dropper").status_code == 404
    srv.assert_no_debris()
    rejected = srv.cli("quarantine", "rejected").stdout
    assert dropper.name in rejected and "malicious" in rejected, rejected


def test_suspicious_upload_is_quarantined_mailed_reviewed_and_released(srv, sink, clients, tmp_path):
    owner = srv.create_user("beacon-owner")
    token = srv.create_token("beacon-owner")
    v1 = WheelBuilder("beacon-e2e", "1.0").build(tmp_path / "v1")
    clients.twine_upload(srv, token, v1)
    mark = sink.mark()
    v2 = WheelBuilder("beacon-e2e", "2.0", init_source=BEACON_INIT).build(tmp_path / "v2")
    clients.twine_upload(srv, token, v2)  # accepted: held, not refused

    # Not listed and not installable: pip resolves to the released 1.0.
    assert listed_versions(srv, "beacon-e2e") == ["1.0"]
    assert srv.get(f"/files/{v2.name}").status_code == 404
    target = tmp_path / "site"
    clients.pip_install(srv, "beacon-e2e", target=target)
    assert (target / "beacon_e2e-1.0.dist-info").is_dir()
    proc = clients.pip_install(srv, "beacon-e2e==2.0", target=tmp_path / "site2", check=False)
    assert proc.returncode != 0, proc.output

    # The owner is told, and can read the report (but not decide).
    mail = sink.wait_for(to=owner["email"], subject_contains="quarantined", start=mark)
    assert v2.name in mail.body and "beacon-e2e" in mail.body, mail.body
    session = owner["session"]
    rep = srv.api("GET", f"/api/quarantine/{v2.name}", session)
    assert rep.status_code == 200, rep.text
    first = rep.json()["reports"][0]
    assert first["verdict"] == "suspicious"
    assert any(f["path"].endswith("__init__.py") for f in first["report"]["findings"]), first
    assert srv.api("POST", f"/api/quarantine/{v2.name}/release", session).status_code == 403

    # The administrator reviews with the CLI and releases it; the index follows.
    listing = srv.cli("quarantine", "list").stdout
    assert v2.name in listing and "suspicious" in listing, listing
    shown = srv.cli("quarantine", "show", v2.name).stdout
    assert "suspicious" in shown and "__init__.py" in shown, shown
    srv.cli("quarantine", "release", v2.name, "--note", "telemetry, agreed with the owner")
    eventually(lambda: expect_versions(srv, "beacon-e2e", ["1.0", "2.0"]))
    clients.pip_install(srv, "beacon-e2e==2.0", target=tmp_path / "site3")
    assert (tmp_path / "site3" / "beacon_e2e-2.0.dist-info").is_dir()
    decided = srv.api("GET", f"/api/quarantine/{v2.name}", session).json()["reports"][0]
    assert decided["decision"] == "released" and decided["note"] == "telemetry, agreed with the owner", decided
    audit = srv.cli("audit", "--project", "beacon-e2e", "--json").stdout
    kinds = [json.loads(line)["kind"] for line in audit.splitlines() if line.strip()]
    assert "file_quarantined" in kinds and "quarantine_decision" in kinds, kinds


def test_a_release_that_gains_capabilities_is_held_for_review(srv, clients, tmp_path):
    """The account-takeover signal: a project's new release that suddenly uses the network, runs
    programs and evaluates code is held, though the same code in a first release is not."""
    owner = srv.create_user("gain-owner")
    token = srv.create_token("gain-owner")
    clients.twine_upload(srv, token, WheelBuilder("gain-e2e", "1.0").build(tmp_path / "v1"))
    gained = {"gain_e2e/util.py": GAINED_UTIL.encode()}
    v11 = WheelBuilder("gain-e2e", "1.1", extra_files=gained).build(tmp_path / "v11")
    clients.twine_upload(srv, token, v11)
    assert listed_versions(srv, "gain-e2e") == ["1.0"]
    rep = srv.api("GET", f"/api/quarantine/{v11.name}", owner["session"])
    assert rep.status_code == 200, rep.text
    first = rep.json()["reports"][0]
    assert first["verdict"] == "suspicious", first
    news = release_news(first["report"])
    assert {"release-new-network", "release-new-process", "release-new-dynamic-code"} <= set(news), first
    assert news["release-new-network"]["path"] == "gain_e2e/util.py" and "release 1.0" in news["release-new-network"]["message"]

    # The same code in a project's first release has nothing to be compared with.
    fresh = WheelBuilder("gain-fresh-e2e", "1.0", extra_files={"gain_fresh_e2e/util.py": GAINED_UTIL.encode()}).build(tmp_path / "f")
    clients.twine_upload(srv, token, fresh)
    assert listed_versions(srv, "gain-fresh-e2e") == ["1.0"]

    # Once reviewed and released, the next release with the same capabilities is not news.
    srv.cli("quarantine", "release", v11.name, "--note", "new updater, reviewed")
    v12 = WheelBuilder("gain-e2e", "1.2", extra_files=gained).build(tmp_path / "v12")
    clients.twine_upload(srv, token, v12)
    eventually(lambda: expect_versions(srv, "gain-e2e", ["1.0", "1.1", "1.2"]))

    # A backport is compared with the releases before it by version, not by upload time.
    v101 = WheelBuilder("gain-e2e", "1.0.1", extra_files=gained).build(tmp_path / "v101")
    clients.twine_upload(srv, token, v101)
    rep = srv.api("GET", f"/api/quarantine/{v101.name}", owner["session"])
    assert rep.status_code == 200 and "release-new-network" in release_news(rep.json()["reports"][0]["report"]), rep.text


def test_wheel_after_its_sdist_gets_its_own_report(srv, clients, tmp_path):
    """`twine upload dist/*` sends the sdist, then the wheel with the same modules: the server
    reuses the sdist's analysis of them, and the wheel's report still names the wheel's members."""
    owner = srv.create_user("pair-owner")
    token = srv.create_token("pair-owner")
    sdist = SdistBuilder(
        "pair-e2e", "1.0", extra_files={"pair_e2e-1.0/pair_e2e/__init__.py": BEACON_INIT.encode()}
    ).build(tmp_path / "dist")
    wheel = WheelBuilder("pair-e2e", "1.0", init_source=BEACON_INIT).build(tmp_path / "dist")
    clients.twine_upload(srv, token, sdist, wheel)
    reports = {}
    for f in (sdist, wheel):
        rep = srv.api("GET", f"/api/quarantine/{f.name}", owner["session"])
        assert rep.status_code == 200, rep.text
        reports[f.name] = rep.json()["reports"][0]
    for name, rep in reports.items():
        assert rep["verdict"] == "suspicious", (name, rep)
    paths = lambda name: {f["path"] for f in reports[name]["report"]["findings"] if f["path"]}
    assert "pair_e2e-1.0/pair_e2e/__init__.py" in paths(sdist.name), reports[sdist.name]
    assert "pair_e2e/__init__.py" in paths(wheel.name), reports[wheel.name]
    assert not any(p.startswith("pair_e2e-1.0/") for p in paths(wheel.name)), reports[wheel.name]
    rules = lambda name: sorted(f["rule"] for f in reports[name]["report"]["findings"] if f["path"].endswith("__init__.py"))
    assert rules(sdist.name) == rules(wheel.name), reports


def test_confirmed_file_is_never_served_and_its_release_is_blocked(srv, clients, tmp_path):
    srv.create_user("confirm-owner")
    token = srv.create_token("confirm-owner")
    held = WheelBuilder("confirm-e2e", "1.0", init_source=BEACON_INIT).build(tmp_path / "held")
    clients.twine_upload(srv, token, held)
    # The project's only file is held, so the whole project carries PEP 792's status.
    body = srv.simple_json("confirm-e2e").json()
    assert body["project-status"]["status"] == "quarantined" and body["files"] == [], body
    record = srv.cli("quarantine", "confirm", held.name).stdout.strip()
    assert record.startswith("x_PALISADE-"), record
    assert held.name not in srv.cli("quarantine", "list").stdout
    # Confirmed: the file answers 403 naming the verdict's OSV record, to anyone, once the server
    # has read the record the CLI wrote (its poll of the database).
    def blocked():
        r = srv.get(f"/files/{held.name}")
        assert r.status_code == 403 and record in r.reason, (r.status_code, r.reason)

    eventually(blocked)
    # The release cannot come back, even clean, under the same or another filename.
    clean = WheelBuilder("confirm-e2e", "1.0").build(tmp_path / "clean")
    proc = clients.twine_upload(srv, token, clean, check=False)
    assert record in proc.output, proc.output


def test_typosquatted_new_project_is_held(srv, clients, tmp_path):
    srv.create_user("squatter")
    token = srv.create_token("squatter")
    squat = WheelBuilder("reqeusts", "2.99.0").build(tmp_path)
    clients.twine_upload(srv, token, squat)
    body = srv.simple_json("reqeusts").json()
    assert body["project-status"]["status"] == "quarantined", body
    shown = srv.cli("quarantine", "show", squat.name).stdout
    assert "meta-typosquat" in shown and "requests" in shown, shown


def test_rescan_applies_new_rules_to_stored_files(make_server, clients, tmp_path):
    config = tmp_path / "palisade.toml"
    config.write_text("[scan]\nrules_dirs = []\n")
    s = make_server({"PALISADE_CONFIG": str(config)})
    s.create_user("rescan-owner")
    token = s.create_token("rescan-owner")
    marked = WheelBuilder("rescan-e2e", "1.0", init_source=f'BANNER = "{MARKER}"\n').build(tmp_path / "d")
    clients.twine_upload(s, token, marked)
    assert listed_versions(s, "rescan-e2e") == ["1.0"]

    # A new rule arrives; the administrator rescans and the stored file is taken out of the index.
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "marker.yar").write_text(MARKER_RULE)
    config.write_text(f"[scan]\nrules_dirs = [{json.dumps(str(rules))}]\n")
    out = s.cli("rescan")
    assert "1 newly quarantined" in out.stderr, out.stderr
    eventually(lambda: expect_versions(s, "rescan-e2e", []))
    assert s.get(f"/files/{marked.name}").status_code == 404
    shown = s.cli("quarantine", "show", marked.name).stdout
    assert "e2e-marker-string" in shown and "rescan" in shown, shown
