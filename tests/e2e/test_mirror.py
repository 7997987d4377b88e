"""The pull-through mirror end to end (docs/mirror.md), with the real binary, pip and uv against a
local PEP 691 upstream written for the test (upstream_index.py):

- one index for private and public packages: pip and uv install a dependency tree through
  Palisade with --require-hashes, reading PEP 658 metadata; upstream's yanks are honoured;
- dependency confusion: upstream's acme-internal 99.0 never reaches clients of the hosted
  acme-internal 1.0, and a reserved name that exists only upstream is not served;
- cooldown: a release younger than mirror.min_age is neither listed nor downloadable, an
  exemption lifts it, and both agree;
- a synthetic malicious file upstream is blocked at its first download with 403 and its release
  leaves the index;
- a page past mirror.refresh is served while upstream is asked again in the background (past
  twice that, the request waits);
- upstream stopped: cached installs still work and /metrics shows the stale pages; fifty
  concurrent requests for one uncached file cause one upstream fetch;
- provenance: an upstream file with a valid PEP 740 provenance object is served with it, a
  tampered one without;
- upstream_names = "refuse" answers the first upload of a public name with 409;
- a wheel upstream serves no metadata file for gets one read out of it (range requests, or the
  whole file where upstream answers none);
- reading ahead: after pip or uv reads a page or fetches a wheel, the newest release's file and
  the wheel's dependencies for their environment are fetched and scanned before they ask, and
  only those.

Every "malicious" package here is synthetic and inert: code in a string, never run.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import pytest
import requests

from distbuilder import SdistBuilder, WheelBuilder
from support import DROPPER_SETUP, Server, eventually, installed_versions
from upstream_index import UpstreamIndex

JSON = "application/vnd.pypi.simple.v1+json"

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pep740"
ATTESTED_SDIST = "pypi_attestations-0.0.19.tar.gz"
GITLAB_SDIST = "gitlab_oidc_project-0.0.3.tar.gz"
DAY = dt.timedelta(days=1)


def wheel(name: str, version: str, **kw) -> tuple[str, bytes]:
    b = WheelBuilder(name, version, **kw)
    return b.default_filename(), b.to_bytes()


@pytest.fixture(scope="module")
def upstream():
    up = UpstreamIndex()
    # A dependency tree: app -> lib -> util; lib 1.1 is yanked upstream.
    for name, version, deps in [
        ("mirror-app", "1.0", ["mirror-lib>=1.0"]),
        ("mirror-lib", "1.0", ["mirror-util"]),
        ("mirror-lib", "1.1", ["mirror-util"]),
        ("mirror-util", "2.0", []),
    ]:
        filename, data = wheel(name, version, requires_dist=deps)
        up.add(name, filename, data, yanked="broken build" if version == "1.1" else False)
    # Reading ahead: ahead-app's dependencies for pip's environment are ahead-lib (its newest final
    # release, 2.0) and, through it, ahead-leaf<2; not the Windows-only or extra-only ones.
    for name, version, deps in [
        ("ahead-app", "1.0", ["ahead-lib", 'ahead-win; sys_platform == "win32"', 'ahead-extra; extra == "x"']),
        ("ahead-lib", "1.0", []),
        ("ahead-lib", "2.0", ["ahead-leaf<2"]),
        ("ahead-lib", "3.0b1", []),
        ("ahead-leaf", "1.0", []),
        ("ahead-leaf", "2.0", []),
        ("ahead-win", "1.0", []),
        ("ahead-extra", "1.0", []),
        ("ahead-uv-app", "1.0", ["ahead-uv-dep"]),
        ("ahead-uv-dep", "1.0", []),
        ("ahead-plain", "1.0", ["ahead-orphan"]),
        ("ahead-orphan", "1.0", []),
        ("ahead-page", "1.0", []),
        ("ahead-page", "2.0", []),
        ("ahead-meta", "1.0", ["ahead-meta-dep"]),
        ("ahead-meta-dep", "1.0", []),
    ]:
        up.add(name, *wheel(name, version, requires_dist=deps))
    # Reading ahead in lanes: lane-mid's metadata is read from parts of it (upstream serves no
    # metadata file) while the whole file is held back, and names lane-leaf.
    up.add("lane-app", *wheel("lane-app", "1.0", requires_dist=["lane-mid"]))
    up.add("lane-mid", *wheel("lane-mid", "1.0", requires_dist=["lane-leaf"]), metadata=False)
    up.add("lane-leaf", *wheel("lane-leaf", "1.0"))
    # Wheels upstream serves no metadata file for: bare-app is small, bare-big and bare-norange
    # large (stored, not compressed), so their metadata is read out of parts of them.
    up.add("bare-app", *wheel("bare-app", "1.0", requires_dist=["bare-big"]), metadata=False)
    lines = {"data.txt": b"".join(b"line %d\n" % i for i in range(120_000))}
    for name in ("bare-big", "bare-norange"):
        up.add(name, *wheel(name, "1.0", compress=False, extra_files={f"{name.replace('-', '_')}/{k}": v for k, v in lines.items()}),
               metadata=False)
    # Dependency confusion: a public acme-internal with a higher version than the hosted one.
    up.add("acme-internal", *wheel("acme-internal", "99.0"))
    # A reserved prefix: only upstream has it.
    up.add("corp-secret", *wheel("corp-secret", "5.0"))
    # Cooldown: 1.0 is a month old, 2.0 an hour; 3.0 has no upload time at all.
    up.add("fresh-lib", *wheel("fresh-lib", "1.0"), age=30 * DAY)
    up.add("fresh-lib", *wheel("fresh-lib", "2.0"), age=dt.timedelta(hours=1))
    up.add("fresh-lib", *wheel("fresh-lib", "3.0"), age=None)
    # A release with a clean wheel and a dropper sdist.
    up.add("evil-helper", *wheel("evil-helper", "1.0"))
    sdist = SdistBuilder("evil-helper", "1.0", extra_files={"evil_helper-1.0/setup.py": DROPPER_SETUP.encode()})
    up.add("evil-helper", sdist.default_filename(), sdist.to_bytes())
    up.add("evil-helper", *wheel("evil-helper", "0.9"))
    # Held back on request, so that concurrent requests line up behind the first.
    filename, data = wheel("slow-lib", "1.0")
    up.add("slow-lib", filename, data)
    up.hold[filename] = 2.0
    # Provenance: the real pypi-attestations sdist with PyPI's provenance object, and the GitLab
    # sdist with a provenance object naming another repository as its publisher.
    up.add("pypi-attestations", ATTESTED_SDIST, (FIXTURES / ATTESTED_SDIST).read_bytes(),
           provenance=(FIXTURES / f"{ATTESTED_SDIST}.provenance").read_bytes())
    attestation = json.loads((FIXTURES / f"{GITLAB_SDIST}.publish.attestation").read_text())
    forged = {"version": 1, "attestation_bundles": [{
        "publisher": {"kind": "GitLab", "repository": "attacker/gitlab-oidc-project", "workflow_filepath": ".gitlab-ci.yml", "environment": None},
        "attestations": [attestation]}]}
    up.add("gitlab-oidc-project", GITLAB_SDIST, (FIXTURES / GITLAB_SDIST).read_bytes(), provenance=json.dumps(forged).encode())
    up.start()
    yield up
    up.stop()


def mirror_config(path: Path, upstream: UpstreamIndex, extra: str = "") -> dict[str, str]:
    path.write_text(
        "[mirror]\n"
        'reserved = ["corp-*"]\n'
        'min_age = "3 days"\n'
        'refresh = "1s"\n'
        f"{extra}"
        "[[mirror.upstreams]]\n"
        'name = "local-pypi"\n'
        f'url = "{upstream.url}"\n'
    )
    return {"PALISADE_CONFIG": str(path)}


@pytest.fixture(scope="module")
def srv(palisade_bin, tmp_path_factory, upstream, sink):
    root = tmp_path_factory.mktemp("srv-mirror")
    s = Server(palisade_bin, root, "test_mirror", {**mirror_config(root / "palisade.toml", upstream), **sink.env()}).start()
    s.create_user("owner", email="owner@example.test")
    yield s
    s.stop()


def listed(srv: Server, project: str) -> dict[str, dict]:
    r = srv.simple_json(project)
    assert r.status_code == 200, r.text
    return {f["filename"]: f for f in r.json()["files"]}


def get_file(srv: Server, filename: str) -> requests.Response:
    return srv.get(f"/files/{filename}")


def test_pip_and_uv_install_a_tree_through_the_mirror_with_hashes(srv, upstream, clients, tmp_path):
    files = listed(srv, "mirror-lib")
    lib11 = files["mirror_lib-1.1-py3-none-any.whl"]
    assert lib11["yanked"] == "broken build"
    assert lib11["url"] == "../../files/mirror_lib-1.1-py3-none-any.whl"
    assert lib11["upload-time"].endswith("Z") and lib11["core-metadata"]["sha256"]
    # HTML too, with the same facts.
    html = srv.get("/simple/mirror-lib/", headers={"Accept": "text/html"}).text
    assert 'data-yanked="broken build"' in html and "#sha256=" in html

    hashes = {}
    for project in ("mirror-app", "mirror-lib", "mirror-util"):
        for name, f in listed(srv, project).items():
            hashes[name] = f["hashes"]["sha256"]
    req = tmp_path / "requirements.txt"
    req.write_text(
        f"mirror-app==1.0 --hash=sha256:{hashes['mirror_app-1.0-py3-none-any.whl']}\n"
        f"mirror-lib==1.0 --hash=sha256:{hashes['mirror_lib-1.0-py3-none-any.whl']}\n"
        f"mirror-util==2.0 --hash=sha256:{hashes['mirror_util-2.0-py3-none-any.whl']}\n"
    )
    clients.pip_install(srv, "-r", str(req), target=tmp_path / "pip", extra=["--require-hashes"])
    assert installed_versions(tmp_path / "pip") == {"mirror-app": "1.0", "mirror-lib": "1.0", "mirror-util": "2.0"}
    clients.uv_install(srv, "-r", str(req), target=tmp_path / "uv", extra=["--require-hashes"])
    assert installed_versions(tmp_path / "uv") == {"mirror-app": "1.0", "mirror-lib": "1.0", "mirror-util": "2.0"}
    # Unpinned, the resolvers skip the yanked 1.1, using the metadata files rather than the wheels.
    clients.pip_install(srv, "mirror-app", target=tmp_path / "pip2")
    assert installed_versions(tmp_path / "pip2")["mirror-lib"] == "1.0"
    clients.uv_install(srv, "mirror-app", target=tmp_path / "uv2")
    assert installed_versions(tmp_path / "uv2")["mirror-lib"] == "1.0"
    assert upstream.hits["/files/mirror_lib-1.0-py3-none-any.whl.metadata"] >= 1
    # The yanked file was never fetched from upstream: the metadata decided.
    assert upstream.file_hits("mirror_lib-1.1-py3-none-any.whl") == 0
    # The bytes served are upstream's, byte for byte.
    r = get_file(srv, "mirror_util-2.0-py3-none-any.whl")
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == hashes["mirror_util-2.0-py3-none-any.whl"]


def test_dependency_confusion_is_impossible(srv, upstream, sink, clients, tmp_path):
    mark = sink.mark()
    token = srv.create_token("owner")
    path = WheelBuilder("acme-internal", "1.0").build(tmp_path / "dist")
    clients.twine_upload(srv, token, path)
    files = listed(srv, "acme-internal")
    assert list(files) == ["acme_internal-1.0-py3-none-any.whl"], files
    assert get_file(srv, "acme_internal-99.0-py3-none-any.whl").status_code == 404
    clients.pip_install(srv, "acme-internal", target=tmp_path / "pip")
    assert installed_versions(tmp_path / "pip") == {"acme-internal": "1.0"}
    clients.uv_install(srv, "acme-internal", target=tmp_path / "uv")
    assert installed_versions(tmp_path / "uv") == {"acme-internal": "1.0"}
    # A reserved name is never looked up upstream, even before anyone uploads it.
    assert srv.simple_json("corp-secret").status_code == 404
    assert get_file(srv, "corp_secret-5.0-py3-none-any.whl").status_code == 404
    assert upstream.hits["/simple/corp-secret/"] == 0
    # Only project names are ever sent upstream: a path that decodes to a URL is not one.
    before = sum(upstream.hits.values())
    for hostile in (f"http:%2F%2F127.0.0.1:{upstream.port}%2Fsimple%2Fmirror-app", "..%2F..%2Fadmin", "%2F%2F2852039166%2Fx"):
        r = srv.get(f"/simple/{hostile}/")
        assert r.status_code in (301, 404), (hostile, r.status_code, r.text)
    assert sum(upstream.hits.values()) == before, upstream.hits
    # The hosted project's name exists upstream: flagged in `mirror status`.
    def flagged():
        out = srv.cli("mirror", "status").stdout
        assert "acme-internal" in out.split("exist upstream:")[-1], out
        return out

    assert "on local-pypi" in eventually(flagged)
    # ...on its page, and in a mail to its owners.
    page = srv.get("/project/acme-internal/").text
    assert "also exists on the upstream index local-pypi" in page, page
    mail = sink.wait_for(to="owner@example.test", subject_contains="acme-internal also exists on local-pypi", start=mark, timeout=20)
    assert "mirror.reserved" in mail.body


def test_cooldown_holds_young_releases_in_the_listing_and_the_download(srv, upstream, clients, tmp_path):
    files = listed(srv, "fresh-lib")
    assert list(files) == ["fresh_lib-1.0-py3-none-any.whl"], files
    r = get_file(srv, "fresh_lib-2.0-py3-none-any.whl")
    assert r.status_code == 403 and "cooldown" in r.text and "mirror.min_age = 3 days" in r.text, r.text
    r = get_file(srv, "fresh_lib-3.0-py3-none-any.whl")
    assert r.status_code == 403 and "no upload time" in r.text, r.text
    assert upstream.file_hits("fresh_lib-2.0-py3-none-any.whl") == 0
    clients.pip_install(srv, "fresh-lib", target=tmp_path / "before")
    assert installed_versions(tmp_path / "before") == {"fresh-lib": "1.0"}
    status = srv.cli("mirror", "status").stdout
    assert "fresh-lib 2.0: until" in status and "fresh-lib 3.0: no upload time upstream" in status, status

    refused = srv.cli("mirror", "exempt", "fresh-lib", "--until", "2099-01-01", "--reason", "", check=False)
    assert refused.returncode == 1 and "reason" in refused.stderr
    srv.cli("mirror", "exempt", "fresh-lib", "--until", "2099-01-01", "--reason", "security fix needed now")
    def all_three():
        f = listed(srv, "fresh-lib")
        assert len(f) == 3, f
        return f

    files = eventually(all_three)
    assert files["fresh_lib-2.0-py3-none-any.whl"]["upload-time"], "upload-time stays for --exclude-newer"
    assert get_file(srv, "fresh_lib-2.0-py3-none-any.whl").status_code == 200
    clients.pip_install(srv, "fresh-lib==2.0", target=tmp_path / "after")
    assert installed_versions(tmp_path / "after") == {"fresh-lib": "2.0"}
    audit = srv.cli("audit", "--json").stdout
    assert "mirror_exemption" in audit and "security fix needed now" in audit


def test_a_malicious_upstream_file_is_blocked_with_its_release(srv, upstream, clients, tmp_path):
    assert "evil_helper-1.0.tar.gz" in listed(srv, "evil-helper")
    r = get_file(srv, "evil_helper-1.0.tar.gz")
    assert r.status_code == 403 and "blocked" in r.text and "py-install" in r.text, r.text
    files = listed(srv, "evil-helper")
    assert list(files) == ["evil_helper-0.9-py3-none-any.whl"], files
    r = get_file(srv, "evil_helper-1.0-py3-none-any.whl")
    assert r.status_code == 403 and "blocked" in r.text
    assert upstream.file_hits("evil_helper-1.0-py3-none-any.whl") == 0
    clients.pip_install(srv, "evil-helper", target=tmp_path / "pip")
    assert installed_versions(tmp_path / "pip") == {"evil-helper": "0.9"}
    status = srv.cli("mirror", "status").stdout
    assert "evil_helper-1.0.tar.gz" in status and "malicious" in status
    # Upstream drops the blocked sdist: the release stays blocked.
    project = upstream.projects["evil-helper"]
    project.files = [f for f in project.files if f.filename != "evil_helper-1.0.tar.gz"]
    time.sleep(1.2)  # past mirror.refresh
    asked = upstream.hits["/simple/evil-helper/"]
    listed(srv, "evil-helper")  # the kept page, while upstream is asked in the background

    def refreshed():
        assert upstream.hits["/simple/evil-helper/"] > asked

    eventually(refreshed)
    time.sleep(1.1)  # past the rendered page's life
    assert list(listed(srv, "evil-helper")) == ["evil_helper-0.9-py3-none-any.whl"]
    assert get_file(srv, "evil_helper-1.0-py3-none-any.whl").status_code == 403


def test_what_a_client_will_ask_for_next_is_fetched_ahead(srv, upstream, clients, tmp_path):
    whl = "{}-{}-py3-none-any.whl".format
    # A client that does not describe its environment (a script, curl) gets only what it asks for.
    assert get_file(srv, whl("ahead_plain", "1.0")).status_code == 200
    # pip installs ahead-app alone: Palisade fetches and scans what pip would ask for next, for
    # the environment pip's User-Agent describes, two levels down.
    clients.pip_install(srv, "ahead-app", target=tmp_path / "pip", extra=["--no-deps"])
    assert installed_versions(tmp_path / "pip") == {"ahead-app": "1.0"}

    def fetched_ahead():
        assert upstream.file_hits(whl("ahead_leaf", "1.0")) == 1

    eventually(fetched_ahead, timeout=30)
    assert upstream.file_hits(whl("ahead_lib", "2.0")) == 1
    # The install that asks for them finds them fetched, checked and scanned: upstream is not asked again.
    clients.pip_install(srv, "ahead-app", target=tmp_path / "pip2")
    assert installed_versions(tmp_path / "pip2") == {"ahead-app": "1.0", "ahead-lib": "2.0", "ahead-leaf": "1.0"}
    assert upstream.file_hits(whl("ahead_lib", "2.0")) == 1 and upstream.file_hits(whl("ahead_leaf", "1.0")) == 1
    metrics = srv.get("/metrics").text
    ahead = [l for l in metrics.splitlines() if l.startswith("palisade_mirror_read_ahead_total ")]
    assert ahead and int(ahead[0].split()[1]) >= 2, metrics
    # uv describes its environment the same way.
    clients.uv_install(srv, "ahead-uv-app", target=tmp_path / "uv", extra=["--no-deps"])

    def uv_fetched_ahead():
        assert upstream.file_hits(whl("ahead_uv_dep", "1.0")) == 1

    eventually(uv_fetched_ahead, timeout=30)
    # pip reads the pages of all its requirements before it downloads a file: a page read by pip
    # has its newest release's file fetched ahead.
    proc = clients.run([sys.executable, "-m", "pip", "index", "versions", "--index-url", srv.index_url, "ahead-page"])
    assert proc.returncode == 0 and "2.0" in proc.stdout, clients.describe(proc)

    def page_read_ahead():
        assert upstream.file_hits(whl("ahead_page", "2.0")) == 1

    eventually(page_read_ahead, timeout=30)
    # A metadata file asked for by pip, its page never read by it: the file and its dependency
    # are fetched ahead.
    proc = clients.run([sys.executable, "-c", "from pip._internal.network.session import user_agent; print(user_agent())"])
    pip_agent = proc.stdout.strip()
    assert proc.returncode == 0 and pip_agent.startswith("pip/"), clients.describe(proc)
    r = requests.get(f"{srv.url}/files/{whl('ahead_meta', '1.0')}.metadata", headers={"User-Agent": pip_agent}, timeout=30)
    assert r.status_code == 200 and b"Requires-Dist: ahead-meta-dep" in r.content

    def metadata_read_ahead():
        assert upstream.file_hits(whl("ahead_meta", "1.0")) == 1 and upstream.file_hits(whl("ahead_meta_dep", "1.0")) == 1

    eventually(metadata_read_ahead, timeout=30)
    # Never: an older or pre-release, a release the requirement excludes, what applies elsewhere
    # (Windows, an extra), or anything for a client that did not describe its environment.
    for never in (whl("ahead_lib", "1.0"), whl("ahead_lib", "3.0b1"), whl("ahead_leaf", "2.0"), whl("ahead_win", "1.0"),
                  whl("ahead_extra", "1.0"), whl("ahead_orphan", "1.0"), whl("ahead_page", "1.0")):
        assert upstream.file_hits(never) == 0, never


def test_dependencies_are_read_ahead_from_metadata_before_the_files_arrive(srv, upstream, clients):
    # A resolver asks for a page, then its metadata, then its dependencies' pages: those are read
    # ahead from metadata (upstream's file, or parts of the wheel), not after each whole file has
    # been fetched and scanned. lane-mid's whole file is held back for 15 s; lane-leaf, which only
    # its metadata names, is fetched well before that. (lane-mid's metadata is read from parts of
    # it: this test runs before the one that teaches the mirror that this host answers no ranges.)
    whl = "{}-1.0-py3-none-any.whl".format
    upstream.hold[f"whole:{whl('lane_mid')}"] = 15.0
    try:
        proc = clients.run([sys.executable, "-c", "from pip._internal.network.session import user_agent; print(user_agent())"])
        pip_agent = proc.stdout.strip()
        assert proc.returncode == 0 and pip_agent.startswith("pip/"), clients.describe(proc)
        started = time.monotonic()
        r = requests.get(f"{srv.url}/simple/lane-app/", headers={"User-Agent": pip_agent, "Accept": JSON}, timeout=30)
        assert r.status_code == 200, r.text

        def leaf_fetched():
            assert upstream.file_hits(whl("lane_leaf")) == 1

        eventually(leaf_fetched, timeout=30)
        assert time.monotonic() - started < 10.0, "lane-leaf waited for lane-mid's whole file"
        assert upstream.range_hits[whl("lane_mid")] >= 1
        # The pages were read ahead too, and lane-mid's metadata is kept: a resolver asking now
        # gets it without waiting for the whole file.
        assert upstream.hits["/simple/lane-mid/"] >= 1 and upstream.hits["/simple/lane-leaf/"] >= 1
        parts = upstream.range_hits[whl("lane_mid")]
        meta = srv.get(f"/files/{whl('lane_mid')}.metadata")
        assert meta.status_code == 200 and b"Requires-Dist: lane-leaf" in meta.content
        assert upstream.range_hits[whl("lane_mid")] == parts
    finally:
        upstream.hold.pop(f"whole:{whl('lane_mid')}", None)

    def mid_fetched():
        r = srv.get(f"/files/{whl('lane_mid')}")
        assert r.status_code == 200
    eventually(mid_fetched, timeout=30)
    assert upstream.file_hits(whl("lane_mid")) == 1


def test_wheels_without_upstream_metadata_get_theirs_read_out_of_them(srv, upstream, clients, tmp_path):
    big = "bare_big-1.0-py3-none-any.whl"
    entry = listed(srv, "bare-big")[big]
    assert entry["core-metadata"] is True and entry["dist-info-metadata"] is True
    assert 'data-core-metadata="true"' in srv.get("/simple/bare-big/", headers={"Accept": "text/html"}).text
    # Read out of parts of the wheel (its end, where the central directory is, then the member if
    # it is not there too): upstream never sends the file.
    r = srv.get(f"/files/{big}.metadata")
    assert r.status_code == 200, r.text
    assert b"Name: bare-big" in r.content and b"Version: 1.0" in r.content
    assert upstream.range_hits[big] >= 1 and upstream.file_hits(big) == 0
    whole = next(f for f in upstream.projects["bare-big"].files if f.filename == big).data
    assert len(whole) > 800_000
    # pip and uv install through it; the metadata they resolved with is the wheel's own.
    clients.pip_install(srv, "bare-app", target=tmp_path / "pip")
    assert installed_versions(tmp_path / "pip") == {"bare-app": "1.0", "bare-big": "1.0"}
    clients.uv_install(srv, "bare-app", target=tmp_path / "uv")
    assert installed_versions(tmp_path / "uv") == {"bare-app": "1.0", "bare-big": "1.0"}
    from upstream_index import wheel_metadata
    assert srv.get(f"/files/{big}.metadata").content == wheel_metadata(whole)
    # An upstream that answers range requests with the whole file: the file is fetched, checked
    # and scanned first, and kept, so the download that follows asks upstream nothing more.
    norange = "bare_norange-1.0-py3-none-any.whl"
    upstream.ranges = False
    try:
        r = srv.get(f"/files/{norange}.metadata")
        assert r.status_code == 200 and b"Name: bare-norange" in r.content, r.text
        # The range request it answered with the whole file, and the fetch.
        assert upstream.file_hits(norange) == 2
        assert get_file(srv, norange).status_code == 200
        assert upstream.file_hits(norange) == 2
        assert "answers range requests with whole files" in srv.log_text()
    finally:
        upstream.ranges = True


def test_a_stale_page_is_served_while_upstream_is_asked_again(srv, upstream):
    before = listed(srv, "mirror-util")
    time.sleep(1.2)  # past mirror.refresh (1 s here), within twice it
    asked = upstream.hits["/simple/mirror-util/"]
    upstream.hold["page:mirror-util"] = 3.0
    try:
        started = time.monotonic()
        assert listed(srv, "mirror-util") == before
        assert time.monotonic() - started < 2.0, "the kept page waited for upstream"

        def asked_again():
            assert upstream.hits["/simple/mirror-util/"] == asked + 1

        eventually(asked_again)
    finally:
        upstream.hold.pop("page:mirror-util", None)
    # Past twice mirror.refresh, a request waits for upstream's answer.
    time.sleep(4.5)
    upstream.hold["page:mirror-util"] = 1.0
    try:
        started = time.monotonic()
        assert listed(srv, "mirror-util") == before
        assert time.monotonic() - started >= 1.0
    finally:
        upstream.hold.pop("page:mirror-util", None)


def test_fifty_concurrent_requests_for_one_uncached_file_fetch_it_once(srv, upstream):
    filename = "slow_lib-1.0-py3-none-any.whl"
    listed(srv, "slow-lib")
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: requests.get(f"{srv.url}/files/{filename}", timeout=60), range(50)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    assert upstream.file_hits(filename) == 1


def test_provenance_is_served_only_when_it_verifies(srv, upstream):
    assert get_file(srv, ATTESTED_SDIST).status_code == 200
    f = listed(srv, "pypi-attestations")[ATTESTED_SDIST]
    assert f["provenance"], f
    r = srv.get(f["provenance"].replace(srv.url, ""))
    assert r.status_code == 200, r.text
    assert r.json() == json.loads((FIXTURES / f"{ATTESTED_SDIST}.provenance").read_text())
    # A provenance object whose publisher is not who signed: the file is served, not as attested.
    assert get_file(srv, GITLAB_SDIST).status_code == 200
    f = listed(srv, "gitlab-oidc-project")[GITLAB_SDIST]
    assert f["provenance"] is None
    assert srv.get(f"/integrity/gitlab-oidc-project/0.0.3/{GITLAB_SDIST}/provenance").status_code == 404
    assert "did not verify" in srv.log_text()


def test_prefetch_then_installs_survive_upstream_going_down(srv, upstream, clients, tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("mirror-app==1.0\nmirror-lib==1.0\nmirror-util==2.0\n")
    out = srv.cli("mirror", "prefetch", "-r", str(req))
    assert "3 file(s) of 3 project(s) are cached" in out.stderr, out.stderr
    # What cannot be had makes prefetch fail, naming it.
    bad = tmp_path / "bad.txt"
    bad.write_text("evil-helper==1.0\n")
    out = srv.cli("mirror", "prefetch", "-r", str(bad), check=False)
    assert out.returncode == 1 and "evil_helper-1.0" in out.stderr and "is blocked" in out.stderr, out.stderr
    upstream.stop()
    # Past mirror.refresh (1 s here): every page asks upstream again, and finds it down.
    time.sleep(1.5)
    try:
        clients.pip_install(srv, "mirror-app", target=tmp_path / "pip")
        assert installed_versions(tmp_path / "pip") == {"mirror-app": "1.0", "mirror-lib": "1.0", "mirror-util": "2.0"}
        clients.uv_install(srv, "mirror-app", target=tmp_path / "uv")
        assert installed_versions(tmp_path / "uv")["mirror-util"] == "2.0"
        metrics = srv.get("/metrics").text
        assert upstream.hits, "the upstream saw requests before it stopped"
        stale = [l for l in metrics.splitlines() if l.startswith("palisade_mirror_stale_pages ")]
        assert stale and int(stale[0].split()[1]) >= 1, metrics
        # A page never fetched answers 502, naming the upstream.
        r = srv.simple_json("never-fetched")
        assert r.status_code == 502 and "local-pypi" in r.text, r.text
    finally:
        upstream.start()


def test_new_projects_with_public_names_can_be_refused(make_server, upstream, clients, tmp_path):
    s = make_server(mirror_config(tmp_path / "refuse.toml", upstream, 'upstream_names = "refuse"\n'))
    s.create_user("owner")
    token = s.create_token("owner")
    proc = clients.twine_upload(s, token, WheelBuilder("mirror-util", "9.0").build(tmp_path / "a"), check=False)
    assert "409" in proc.stdout + proc.stderr and "exists on the upstream index" in proc.stdout + proc.stderr
    # A reserved name is not looked up, and a name upstream lacks is fine.
    clients.twine_upload(s, token, WheelBuilder("corp-tool", "1.0").build(tmp_path / "b"))
    clients.twine_upload(s, token, WheelBuilder("only-here", "1.0").build(tmp_path / "c"))
    assert set(s.project_files("only-here")) == {"only_here-1.0-py3-none-any.whl"}


def test_hostile_upstream_answers_are_refused(make_server, tmp_path):
    import http.server
    import threading

    class Hostile(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):  # noqa: N802
            good = hashlib.sha256(b"x").hexdigest()
            pages = {
                "/simple/lies/": {"meta": {"api-version": "1.0"}, "name": "lies", "files": [
                    {"filename": "lies-1.0-py3-none-any.whl", "url": "/files/lies-1.0-py3-none-any.whl", "hashes": {"sha256": good},
                     "upload-time": "2020-01-01T00:00:00Z"},
                    {"filename": "../../etc/passwd", "url": "/x", "hashes": {"sha256": good}},
                    {"filename": "other-1.0-py3-none-any.whl", "url": "/x", "hashes": {"sha256": good}},
                    {"filename": "lies-2.0-py3-none-any.whl", "url": "http://169.254.169.254/latest", "hashes": {"sha256": good}}]},
                "/simple/wrong-name/": {"meta": {"api-version": "1.0"}, "name": "something-else", "files": []},
            }
            if self.path in pages:
                body = json.dumps(pages[self.path]).encode()
                ctype = "application/vnd.pypi.simple.v1+json"
            elif self.path == "/simple/html/":
                body, ctype = b"<html></html>", "text/html"
            elif self.path.startswith("/files/"):
                body, ctype = b"not the promised bytes", "application/octet-stream"
            else:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        config = tmp_path / "hostile.toml"
        config.write_text(f'[[mirror.upstreams]]\nname = "hostile"\nurl = "http://127.0.0.1:{httpd.server_address[1]}/simple/"\n')
        s = make_server({"PALISADE_CONFIG": str(config)})
        # Only the entry that can be checked is listed.
        assert list(listed(s, "lies")) == ["lies-1.0-py3-none-any.whl"]
        r = get_file(s, "lies-1.0-py3-none-any.whl")
        assert r.status_code == 502 and "sha256" in r.text, r.text
        assert get_file(s, "lies-2.0-py3-none-any.whl").status_code == 404
        for name, want in (("wrong-name", "not \"wrong-name\""), ("html", "not PEP 691 JSON")):
            r = s.simple_json(name)
            assert r.status_code == 502 and want in r.text, r.text
        assert s.get("/files/..%2F..%2Fetc%2Fpasswd").status_code == 404
        assert "panicked" not in s.log_text()
    finally:
        httpd.shutdown()


@pytest.mark.skipif(os.environ.get("PALISADE_TEST_LIVE_INDEX") != "1", reason="the live index check is opt-in (PALISADE_TEST_LIVE_INDEX=1)")
def test_live_pypi_through_the_mirror(make_server, clients, tmp_path):
    config = tmp_path / "live.toml"
    config.write_text('[[mirror.upstreams]]\nname = "pypi"\nurl = "https://pypi.org/simple/"\nfile_hosts = ["files.pythonhosted.org"]\n')
    s = make_server({"PALISADE_CONFIG": str(config)})
    clients.pip_install(s, "requests", target=tmp_path / "pip")
    assert {"requests", "urllib3", "idna", "certifi", "charset-normalizer"} <= set(installed_versions(tmp_path / "pip"))
    clients.uv_install(s, "requests", target=tmp_path / "uv")
    assert "requests" in installed_versions(tmp_path / "uv")
