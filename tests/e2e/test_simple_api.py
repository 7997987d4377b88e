"""Read APIs: the simple API in HTML and JSON (PEP 503/629/691/700/658/714/592), content
negotiation, redirects, ETag/304, serial header, file downloads with Range, the PyPI
JSON API, /healthz and /metrics."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlparse

import pytest

from distbuilder import SdistBuilder, WheelBuilder, read_wheel_metadata
from support import HTML_V1, JSON_LATEST, JSON_V1, eventually

PROJECT = "My.Pkg"  # normalized: my-pkg
NORM = "my-pkg"
UPLOAD_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


@pytest.fixture(scope="module")
def dists(server, module_clients, tmp_path_factory):
    d = tmp_path_factory.mktemp("simple-dists")
    server.create_user("reader")
    token = server.create_token("reader")
    built = {
        "w09": WheelBuilder(PROJECT, "0.9", summary="old one").build(d),
        "w10": WheelBuilder(PROJECT, "1.0", summary="first", requires_python=">=3.8").build(d),
        "s10": SdistBuilder(PROJECT, "1.0", summary="first", requires_python=">=3.8").build(d),
        "w11": WheelBuilder(PROJECT, "1.1", summary="second", requires_python=">=3.8,<4",
                            requires_dist=["packaging>=20"]).build(d),
    }
    module_clients.twine_upload(server, token, *built.values())
    server.cli("yank", NORM, "0.9", "--reason", "broken build")
    eventually(lambda: _assert_yanked(server, built["w09"].name, "broken build"))
    server.token = token
    return built


def _assert_yanked(server, filename, reason):
    f = server.project_files(NORM)[filename]
    assert f.get("yanked") == reason, f"{filename}: yanked={f.get('yanked')!r}"


class Anchors(HTMLParser):
    def __init__(self):
        super().__init__()
        self.anchors: list[dict] = []
        self.meta: dict[str, str] = {}
        self._cur = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a":
            self._cur = {**attrs, "_text": ""}
            self.anchors.append(self._cur)
        elif tag == "meta" and "name" in attrs:
            self.meta[attrs["name"]] = attrs.get("content")

    def handle_endtag(self, tag):
        if tag == "a":
            self._cur = None

    def handle_data(self, data):
        if self._cur is not None:
            self._cur["_text"] += data


def parse_html(text: str) -> Anchors:
    p = Anchors()
    p.feed(text)
    return p


def ctype(r) -> str:
    return r.headers.get("content-type", "").split(";")[0].strip()


# ---- project list -------------------------------------------------------------------


def test_project_list_html_by_default(server, dists):
    r = server.get("/simple/")
    assert r.status_code == 200
    assert ctype(r) in ("text/html", HTML_V1), r.headers
    page = parse_html(r.text)
    assert page.meta.get("pypi:repository-version") == "1.4"
    links = {a["_text"].strip(): a.get("href") for a in page.anchors}
    assert any(re.sub(r"[-_.]+", "-", t).lower() == NORM for t in links), links
    href = [h for t, h in links.items() if re.sub(r"[-_.]+", "-", t).lower() == NORM][0]
    assert urljoin(server.url + "/simple/", href).rstrip("/").endswith(f"/simple/{NORM}"), href


def test_project_list_json(server, dists):
    r = server.get("/simple/", headers={"Accept": JSON_V1})
    assert r.status_code == 200
    assert ctype(r) == JSON_V1
    body = r.json()
    assert body["meta"]["api-version"] == "1.4"
    assert NORM in {re.sub(r"[-_.]+", "-", p["name"]).lower() for p in body["projects"]}


# ---- project detail -----------------------------------------------------------------


def test_project_detail_json_fields(server, dists):
    r = server.get(f"/simple/{NORM}/", headers={"Accept": JSON_V1})
    assert r.status_code == 200
    assert ctype(r) == JSON_V1
    body = r.json()
    assert body["meta"]["api-version"] == "1.4"
    assert body["name"] == NORM
    assert set(body["versions"]) >= {"0.9", "1.0", "1.1"}
    files = {f["filename"]: f for f in body["files"]}
    assert set(files) == {p.name for p in dists.values()}
    for key, path in dists.items():
        f = files[path.name]
        data = path.read_bytes()
        assert f["hashes"]["sha256"] == hashlib.sha256(data).hexdigest()
        if "blake2b_256" in f["hashes"]:
            assert f["hashes"]["blake2b_256"] == hashlib.blake2b(data, digest_size=32).hexdigest()
        assert f["size"] == len(data)
        assert isinstance(f["size"], int)
        assert UPLOAD_TIME.match(f["upload-time"]), f["upload-time"]
        assert f["url"]
        expected_rp = {"w09": None, "w10": ">=3.8", "s10": ">=3.8", "w11": ">=3.8,<4"}[key]
        assert f.get("requires-python") == expected_rp
        if key == "w09":
            assert f["yanked"] == "broken build"
        else:
            assert f.get("yanked", False) is False
        if key.startswith("w"):
            cm = f["core-metadata"]
            assert isinstance(cm, dict) and re.fullmatch(r"[0-9a-f]{64}", cm["sha256"]), cm
            assert f["dist-info-metadata"] == cm


def test_project_detail_html(server, dists):
    r = server.get(f"/simple/{NORM}/", headers={"Accept": "text/html"})
    assert r.status_code == 200
    assert ctype(r) in ("text/html", HTML_V1)
    page = parse_html(r.text)
    assert page.meta.get("pypi:repository-version") == "1.4"
    anchors = {a["_text"].strip(): a for a in page.anchors}
    assert set(anchors) == {p.name for p in dists.values()}
    json_files = server.project_files(NORM)
    for key, path in dists.items():
        a = anchors[path.name]
        frag = urlparse(a["href"]).fragment
        assert frag == "sha256=" + hashlib.sha256(path.read_bytes()).hexdigest()
        jf = json_files[path.name]
        if key == "w11":
            assert a.get("data-requires-python") == ">=3.8,<4"
            assert re.search(r"data-requires-python=[\"']&gt;=3\.8,&lt;4[\"']", r.text), "'<' and '>' must be HTML-escaped"
        if key == "w09":
            assert a.get("data-yanked") == "broken build"
        else:
            assert "data-yanked" not in a
        if key.startswith("w"):
            assert a.get("data-core-metadata") == "sha256=" + jf["core-metadata"]["sha256"]
            assert a.get("data-dist-info-metadata") == "sha256=" + jf["core-metadata"]["sha256"]
        # the HTML link and the JSON url lead to the same bytes
        base = server.url + f"/simple/{NORM}/"
        got = server.get(urljoin(base, a["href"]).split("#")[0])
        assert got.status_code == 200 and got.content == path.read_bytes()


def test_unknown_project_404(server, dists):
    assert server.get("/simple/does-not-exist/").status_code == 404
    assert server.get("/simple/does-not-exist/", headers={"Accept": JSON_V1}).status_code == 404


@pytest.mark.parametrize("path", ["/simple/My_Pkg/", "/simple/MY.PKG/", f"/simple/{NORM}", "/simple/my_pkg"])
def test_redirect_to_normalized_url(server, dists, path):
    r = server.get(path)
    assert r.status_code == 301, f"{path}: {r.status_code}"
    loc = urljoin(server.url + path, r.headers["location"])
    assert urlparse(loc).path == f"/simple/{NORM}/", loc


# ---- content negotiation ------------------------------------------------------------


@pytest.mark.parametrize(
    "accept,expected",
    [
        (None, "html"),
        ("*/*", "html"),
        ("text/html", "html"),
        (HTML_V1, "html"),
        (JSON_V1, "json"),
        (JSON_LATEST, "json"),
        ("application/vnd.pypi.simple.latest+html", "html"),
        (f"{JSON_V1}, {HTML_V1};q=0.1, text/html;q=0.01", "json"),  # what pip sends
        (f"text/html;q=0.9, {JSON_V1};q=0.1", "html"),
        (f"text/html;q=0.1, {JSON_V1};q=0.9", "json"),
        (f"{JSON_V1};q=0, text/html", "html"),
        ("application/xml, */*;q=0.1", "any"),
    ],
)
def test_content_negotiation(server, dists, accept, expected):
    headers = {"Accept": accept}  # None: requests sends no Accept header at all
    for path in ("/simple/", f"/simple/{NORM}/"):
        r = server.get(path, headers=headers)
        if accept is None:
            assert "accept" not in {k.lower() for k in r.request.headers}
        assert r.status_code == 200, f"{path} Accept={accept!r}: {r.status_code}"
        ct = ctype(r)
        if expected == "json":
            assert ct == JSON_V1, f"{path} Accept={accept!r} -> {ct}"
            r.json()
        elif expected == "html":
            assert ct in ("text/html", HTML_V1), f"{path} Accept={accept!r} -> {ct}"
        else:
            assert ct in ("text/html", HTML_V1, JSON_V1)


@pytest.mark.parametrize("accept", ["application/xml", "application/vnd.pypi.simple.v2+json", "image/png",
                                    f"{JSON_V1};q=0"])
def test_406_when_nothing_acceptable(server, dists, accept):
    for path in ("/simple/", f"/simple/{NORM}/"):
        r = server.get(path, headers={"Accept": accept})
        assert r.status_code == 406, f"{path} Accept={accept!r}: {r.status_code} {ctype(r)}"


def test_format_parameter_overrides_accept(server, dists):
    # params= percent-encodes the value ("+" must not arrive as a space)
    r = server.get(f"/simple/{NORM}/", params={"format": JSON_V1}, headers={"Accept": "text/html"})
    assert r.status_code == 200 and ctype(r) == JSON_V1, (r.status_code, ctype(r))
    assert r.json()["name"] == NORM
    r = server.get(f"/simple/{NORM}/", params={"format": "text/html"}, headers={"Accept": JSON_V1})
    assert r.status_code == 200 and ctype(r) in ("text/html", HTML_V1), (r.status_code, ctype(r))
    r = server.get("/simple/", params={"format": JSON_V1})
    assert r.status_code == 200 and ctype(r) == JSON_V1, (r.status_code, ctype(r))
    r = server.get("/simple/", params={"format": "application/xml"})
    assert r.status_code == 406, r.status_code


# ---- caching headers, serial ----------------------------------------------------------


def test_etag_and_304(server, dists):
    for path in ("/simple/", f"/simple/{NORM}/"):
        for accept in ("text/html", JSON_V1):
            r = server.get(path, headers={"Accept": accept})
            etag = r.headers.get("etag")
            assert etag, f"{path} ({accept}) has no ETag"
            r2 = server.get(path, headers={"Accept": accept, "If-None-Match": etag})
            assert r2.status_code == 304, f"{path} ({accept}) If-None-Match -> {r2.status_code}"
            assert r2.content == b""
            r3 = server.get(path, headers={"Accept": accept, "If-None-Match": '"something-else"'})
            assert r3.status_code == 200
            r4 = server.get(path, headers={"Accept": accept, "If-None-Match": f'"something-else", {etag}'})
            assert r4.status_code == 304, "an If-None-Match list containing the ETag should give 304"


def test_etag_differs_between_representations(server, dists):
    html = server.get(f"/simple/{NORM}/", headers={"Accept": "text/html"})
    js = server.get(f"/simple/{NORM}/", headers={"Accept": JSON_V1})
    assert html.headers["etag"] != js.headers["etag"], "HTML and JSON must not share an ETag"
    r = server.get(f"/simple/{NORM}/", headers={"Accept": JSON_V1, "If-None-Match": html.headers["etag"]})
    assert r.status_code == 200, "an HTML ETag must not validate the JSON representation"


def test_vary_accept_on_negotiated_pages(server, dists):
    for path in ("/simple/", f"/simple/{NORM}/"):
        r = server.get(path, headers={"Accept": JSON_V1})
        assert "accept" in r.headers.get("vary", "").lower(), f"{path}: Vary should name Accept: {r.headers.get('vary')!r}"


def test_serial_header_and_etag_change_on_upload(server, dists, clients, tmp_path):
    def serial(path):
        r = server.get(path, headers={"Accept": JSON_V1})
        assert r.status_code == 200
        s = r.headers.get("x-pypi-last-serial")
        assert s is not None and s.isdigit(), f"{path}: X-PyPI-Last-Serial={s!r}"
        return int(s), r.headers["etag"]

    s_list, e_list = serial("/simple/")
    s_proj, e_proj = serial(f"/simple/{NORM}/")
    assert s_list >= s_proj > 0
    w = WheelBuilder(PROJECT, "1.2").build(tmp_path)
    clients.twine_upload(server, server.token, w)

    def changed():
        s2_proj, e2_proj = serial(f"/simple/{NORM}/")
        assert s2_proj > s_proj and e2_proj != e_proj
        s2_list, _ = serial("/simple/")
        assert s2_list >= s2_proj

    eventually(changed)
    dists["w12"] = w


# ---- files and core metadata ----------------------------------------------------------


def test_file_download_headers_and_range(server, dists):
    files = server.project_files(NORM)
    path = dists["w10"]
    data = path.read_bytes()
    url = server.file_url(files[path.name], server.url + f"/simple/{NORM}/")
    r = server.get(url)
    assert r.status_code == 200
    assert r.content == data
    assert r.headers.get("content-type"), "file response without Content-Type"
    assert int(r.headers["content-length"]) == len(data)
    assert r.headers.get("etag")
    assert "immutable" in r.headers.get("cache-control", ""), r.headers.get("cache-control")

    r = server.get(url, headers={"Range": "bytes=0-9"})
    assert r.status_code == 206, r.status_code
    assert r.content == data[:10]
    assert r.headers.get("content-range") == f"bytes 0-9/{len(data)}"

    r = server.get(url, headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == data[-5:]

    r = server.get(url, headers={"If-None-Match": server.get(url).headers["etag"]})
    assert r.status_code == 304

    r = server.get(url, headers={"Range": f"bytes={len(data) + 10}-"})
    assert r.status_code == 416, f"unsatisfiable range -> {r.status_code}"

    r = server.head(url)
    assert r.status_code == 200 and int(r.headers["content-length"]) == len(data) and r.content == b""

    r = server.get(url + "x")
    assert r.status_code == 404


def test_sdist_download_hash(server, dists):
    f = server.project_files(NORM)[dists["s10"].name]
    body = server.download(f)
    assert hashlib.sha256(body).hexdigest() == f["hashes"]["sha256"] == hashlib.sha256(dists["s10"].read_bytes()).hexdigest()


def test_core_metadata_served_and_matches_hash(server, dists):
    files = server.project_files(NORM)
    for key in ("w09", "w10", "w11"):
        path = dists[key]
        f = files[path.name]
        url = server.file_url(f, server.url + f"/simple/{NORM}/") + ".metadata"
        r = server.get(url)
        assert r.status_code == 200, f"{url}: {r.status_code}"
        assert hashlib.sha256(r.content).hexdigest() == f["core-metadata"]["sha256"]
        assert r.content == read_wheel_metadata(path), "served METADATA differs from the wheel's"


def test_sdist_core_metadata_consistent(server, dists):
    """An sdist either advertises no core metadata, or serves what it advertises."""
    f = server.project_files(NORM)[dists["s10"].name]
    cm = f.get("core-metadata", False)
    if cm is False or cm is None:
        assert f.get("dist-info-metadata", False) in (False, None)
        return
    r = server.get(server.file_url(f, server.url + f"/simple/{NORM}/") + ".metadata")
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == cm["sha256"]


# ---- PyPI JSON API ------------------------------------------------------------------


def _check_file_entry(entry, path, version, packagetype, python_version):
    data = path.read_bytes()
    assert entry["filename"] == path.name
    assert entry["digests"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["digests"]["md5"] == hashlib.md5(data).hexdigest()
    assert entry["digests"]["blake2b_256"] == hashlib.blake2b(data, digest_size=32).hexdigest()
    assert entry["packagetype"] == packagetype
    assert entry["python_version"] == python_version
    assert entry["size"] == len(data)
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", entry["upload_time_iso_8601"])
    assert entry["url"]
    assert "yanked" in entry and "yanked_reason" in entry


def test_pypi_json_project(server, dists):
    r = server.get(f"/pypi/{NORM}/json")
    assert r.status_code == 200
    assert ctype(r) == "application/json"
    body = r.json()
    info = body["info"]
    latest = "1.2" if "w12" in dists else "1.1"
    assert re.sub(r"[-_.]+", "-", info["name"]).lower() == NORM
    assert info["version"] == latest
    assert info["yanked"] is False
    assert "yanked_reason" in info
    assert isinstance(body["last_serial"], int)
    assert set(body["releases"]) >= {"0.9", "1.0", "1.1"}
    rel10 = {e["filename"]: e for e in body["releases"]["1.0"]}
    assert set(rel10) == {dists["w10"].name, dists["s10"].name}
    _check_file_entry(rel10[dists["w10"].name], dists["w10"], "1.0", "bdist_wheel", "py3")
    _check_file_entry(rel10[dists["s10"].name], dists["s10"], "1.0", "sdist", "source")
    rel09 = body["releases"]["0.9"][0]
    assert rel09["yanked"] is True and rel09["yanked_reason"] == "broken build"
    assert rel10[dists["w10"].name]["yanked"] is False
    urls = {e["filename"] for e in body["urls"]}
    assert urls == {dists["w12" if latest == "1.2" else "w11"].name}


def test_pypi_json_version(server, dists):
    r = server.get(f"/pypi/{NORM}/1.1/json")
    assert r.status_code == 200
    body = r.json()
    info = body["info"]
    assert info["version"] == "1.1"
    assert info["summary"] == "second"
    assert info["requires_python"] == ">=3.8,<4"
    assert info["requires_dist"] == ["packaging>=20"]
    assert [e["filename"] for e in body["urls"]] == [dists["w11"].name]
    _check_file_entry(body["urls"][0], dists["w11"], "1.1", "bdist_wheel", "py3")

    r = server.get(f"/pypi/{NORM}/0.9/json")
    assert r.status_code == 200
    info = r.json()["info"]
    assert info["yanked"] is True and info["yanked_reason"] == "broken build"

    assert server.get(f"/pypi/{NORM}/7.7/json").status_code == 404
    assert server.get("/pypi/does-not-exist/json").status_code == 404


# ---- health and metrics ---------------------------------------------------------------


def test_healthz(server):
    r = server.get("/healthz")
    assert r.status_code == 200 and r.text.strip() == "ok"


def test_metrics(server, dists):
    server.get("/simple/")
    r = server.get("/metrics")
    assert r.status_code == 200
    assert ctype(r) == "text/plain", r.headers.get("content-type")
    samples = {}
    for line in r.text.splitlines():
        m = re.match(r"^(palisade_[a-zA-Z0-9_:]+)(\{[^}]*\})?\s+([0-9.eE+\-]+|NaN|\+Inf)", line)
        if m:
            samples.setdefault(m.group(1), []).append(float(m.group(3)))
    assert samples, f"no palisade_* samples in /metrics:\n{r.text[:2000]}"
    counters = re.findall(r"^# TYPE (palisade_\w+) counter$", r.text, re.M)
    assert counters, "no palisade_* counter declared"
    assert any(sum(v) > 0 for k, v in samples.items()), "every palisade_* sample is zero after traffic"
