"""PEP 740 attestations end to end: real distributions with the real attestations PyPI served
for them (tests/fixtures/pep740, signed with Sigstore's public-good instance by GitHub Actions
and GitLab CI), uploaded with real twine (`--attestations`) through trusted publishing, and the
provenance Palisade then serves, verified offline by `pypi-attestations` (an implementation not
written here) against the file.

The trusted-publishing token exchange runs against local issuers standing in for GitHub Actions
and GitLab (`[oidc]`), while the certificates name the real issuers: `[attestations]`'s
certificate issuers keep their defaults, so only the real signers are accepted.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from pypi_attestations import Distribution, Provenance

from distbuilder import SdistBuilder, WheelBuilder
from oidc_issuer import Issuer
from support import Server
from test_trusted_publishing import AUDIENCE, github_claims, minted

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pep740"
SDIST = "pypi_attestations-0.0.19.tar.gz"
REPO = "trailofbits/pypi-attestations"
GITLAB_SDIST = "gitlab_oidc_project-0.0.3.tar.gz"
GITLAB_PROJECT = "facutuesca/gitlab-oidc-project"
STAGING_WHEEL = "rfc8785-0.1.2-py3-none-any.whl"
REFUSED = "Invalid attestations supplied during upload"
INTEGRITY = "application/vnd.pypi.integrity.v1+json"
# The immutable ids GitHub gave the fixture's owner and repository (its certificate's Source
# Repository Owner Identifier and Source Repository Identifier): the local issuer's job tokens
# carry them, since a publisher binds the ids of its first token and attestations must match.
REPO_IDS = {"repository_owner_id": "2314423", "repository_id": "772247423"}


@pytest.fixture(scope="module")
def issuers():
    gh, gl = Issuer("ES256", "gh"), Issuer("ES256", "gl")
    yield SimpleNamespace(gh=gh, gl=gl)
    gh.close()
    gl.close()


@pytest.fixture(scope="module")
def srv(palisade_bin, tmp_path_factory, issuers):
    env = {
        "PALISADE_OIDC_GITHUB_ISSUER": issuers.gh.url,
        "PALISADE_OIDC_GITLAB_ISSUER": issuers.gl.url,
        "PALISADE_OIDC_ALLOW_INSECURE_LOOPBACK": "true",
        "PALISADE_ACCOUNTS_TOKEN_MAX_FAILURES": "200",
    }
    s = Server(palisade_bin, tmp_path_factory.mktemp("srv-provenance"), "provenance", env)
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def owner(srv):
    srv.create_user("owner")
    return SimpleNamespace(name="owner", token=srv.create_token("owner"))


def gitlab_claims(issuer: Issuer, project: str, ci_config: str = ".gitlab-ci.yml") -> dict:
    now = int(time.time())
    return {
        "iss": issuer.url, "aud": AUDIENCE, "sub": f"project_path:{project}:ref_type:branch:ref:main",
        "project_path": project, "namespace_path": project.rsplit("/", 1)[0],
        "ci_config_ref_uri": f"gitlab.com/{project}//{ci_config}@refs/heads/main",
        "ref": "main", "ref_type": "branch", "jti": str(uuid.uuid4()), "iat": now, "nbf": now, "exp": now + 300,
    }


def staged(tmp_path: Path, dist: str, attestations: dict[str, bytes | str]) -> Path:
    """`dist` copied into a folder of its own with the given sibling attestation files (suffix ->
    content), as twine --attestations picks them up (`<dist>.<anything>.attestation`)."""
    folder = tmp_path / f"stage-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    shutil.copy(FIXTURES / dist, folder / dist)
    for suffix, content in attestations.items():
        data = content if isinstance(content, bytes) else (FIXTURES / content).read_bytes()
        (folder / f"{dist}.{suffix}.attestation").write_bytes(data)
    return folder / dist


def fixture_json(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def twine_attested(clients, srv: Server, token: str, path: Path, *, check: bool):
    proc = clients.run([
        clients.bin_dir / "python", "-m", "twine", "upload", "--attestations",
        "--repository-url", srv.upload_url, "-u", "__token__", "-p", token,
        "--non-interactive", "--disable-progress-bar", "--verbose",
        # As `twine upload dist/*`: the attestations are found among the files given.
        *sorted(path.parent.iterdir()),
    ])
    if check:
        assert proc.returncode == 0, "twine upload --attestations failed:\n" + clients.describe(proc)
    else:
        assert proc.returncode != 0, "twine upload --attestations unexpectedly succeeded:\n" + clients.describe(proc)
    return proc


def provenance(srv: Server, project: str, version: str, filename: str, accept: str = INTEGRITY):
    return srv.get(f"/integrity/{project}/{version}/{filename}/provenance", headers={"Accept": accept})


@pytest.fixture(scope="module")
def attested_project(srv, owner, issuers):
    """`pypi-attestations`, a project of `owner` whose trusted publisher is the real repository's
    release workflow (the one that signed the fixtures)."""
    srv.cli("publisher", "add", "pypi-attestations", "--github", REPO, "--workflow", "release.yml", "--owner", "owner")
    return "pypi-attestations"


def test_real_attestations_are_accepted_served_and_verify_with_pypi_attestations(srv, attested_project, issuers, clients, tmp_path):
    token = minted(srv, issuers.gh.sign(github_claims(issuers.gh, REPO, **REPO_IDS)))
    path = staged(tmp_path, SDIST, {"publish": "pypi_attestations-0.0.19.tar.gz.publish.attestation",
                                    "slsa": "pypi_attestations-0.0.19.tar.gz.slsa.attestation"})
    twine_attested(clients, srv, token, path, check=True)

    # The JSON index and the JSON API link the provenance by an absolute URL on this server.
    files = srv.project_files(attested_project)
    want = f"{srv.url}/integrity/{attested_project}/0.0.19/{SDIST}/provenance"
    assert files[SDIST]["provenance"] == want, files[SDIST]
    api = srv.get(f"/pypi/{attested_project}/json").json()
    assert api["urls"][0]["provenance"] == want
    # Plain http is no secure origin: PEP 740 forbids data-provenance there.
    assert "data-provenance" not in srv.get(f"/simple/{attested_project}/", headers={"Accept": "text/html"}).text

    r = provenance(srv, attested_project, "0.0.19", SDIST)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == INTEGRITY
    body = r.json()
    assert body["version"] == 1 and len(body["attestation_bundles"]) == 1, body
    bundle = body["attestation_bundles"][0]
    assert bundle["publisher"]["kind"] == "GitHub" and bundle["publisher"]["repository"] == REPO
    assert bundle["publisher"]["workflow"] == "release.yml"
    assert len(bundle["attestations"]) == 2

    # An independent client verifies what Palisade serves, offline, against the file pip gets.
    download = tmp_path / SDIST
    download.write_bytes(srv.download(files[SDIST]))
    dist = Distribution.from_file(download)
    prov = Provenance.model_validate_json(r.text)
    predicates = set()
    for b in prov.attestation_bundles:
        for a in b.attestations:
            predicate_type, _ = a.verify(b.publisher, dist, offline=True)
            predicates.add(predicate_type)
    assert predicates == {"https://docs.pypi.org/attestations/publish/v1", "https://slsa.dev/provenance/v1"}

    # The command docs/transparency.md gives users: pypi-attestations' own CLI, offline, with the
    # provenance fetched from Palisade and the file as installed.
    prov_file = tmp_path / "provenance.json"
    prov_file.write_text(r.text)
    cli = clients.bin_dir / "pypi-attestations"
    proc = clients.run([cli, "verify", "pypi", "--offline", "--repository", f"https://github.com/{REPO}",
                        "--provenance-file", prov_file, download])
    assert proc.returncode == 0 and f"OK: {SDIST}" in proc.stdout + proc.stderr, clients.describe(proc)
    proc = clients.run([cli, "verify", "pypi", "--offline", "--repository", "https://github.com/someone/else",
                        "--provenance-file", prov_file, download])
    assert proc.returncode != 0, clients.describe(proc)

    # Accept negotiation, and files without provenance.
    assert provenance(srv, attested_project, "0.0.19", SDIST, accept="text/html").status_code == 406
    assert provenance(srv, attested_project, "9.9", SDIST).status_code == 404
    assert provenance(srv, "other-project", "0.0.19", SDIST).status_code == 404


def flat(proc) -> str:
    """twine's output with its line wrapping undone."""
    return " ".join((proc.stdout + proc.stderr).split())


def refused(clients, srv, token, path: Path, *fragments: str) -> str:
    proc = twine_attested(clients, srv, token, path, check=False)
    out = flat(proc)
    assert "400" in out and REFUSED in out, clients.describe(proc)
    for f in fragments:
        assert f in out, f"{f!r} not in twine's output:\n{clients.describe(proc)}"
    return out


def tampered(name: str, edit) -> bytes:
    value = fixture_json(name)
    edit(value)
    return json.dumps(value).encode()


def flip_signature(value: dict) -> None:
    sig = bytearray(base64.b64decode(value["envelope"]["signature"]))
    sig[-3] ^= 1
    value["envelope"]["signature"] = base64.b64encode(bytes(sig)).decode()


def drop_integrated_time(value: dict) -> None:
    for entry in value["verification_material"]["transparency_entries"]:
        entry.pop("integratedTime", None)
        entry["kindVersion"]["version"] = "0.0.2"


@pytest.fixture(scope="module")
def refusing(palisade_bin, tmp_path_factory, issuers):
    """A server where `pypi-attestations` has the real publisher and one for another repository,
    and the fixture sdist is never accepted: every upload of it here must be refused whole (an
    accepted one would make the next attempt an identical re-upload)."""
    env = {"PALISADE_OIDC_GITHUB_ISSUER": issuers.gh.url, "PALISADE_OIDC_ALLOW_INSECURE_LOOPBACK": "true"}
    s = Server(palisade_bin, tmp_path_factory.mktemp("srv-provenance-refusals"), "provenance-refusals", env)
    s.start()
    s.create_user("owner")
    s.cli("publisher", "add", "pypi-attestations", "--github", REPO, "--workflow", "release.yml", "--owner", "owner")
    s.cli("publisher", "add", "pypi-attestations", "--github", "someone/else", "--workflow", "release.yml", "--owner", "owner")
    s.cli("publisher", "add", "rfc8785", "--github", REPO, "--workflow", "release.yml", "--owner", "owner")
    yield s
    s.stop()


def assert_nothing_stored(srv: Server) -> None:
    assert srv.blob_files() == [], f"a refused upload left blobs: {srv.blob_files()}"
    assert srv.tmp_entries() == []
    assert srv.project_files("pypi-attestations") == {}


@pytest.mark.parametrize(
    "case, attestations, fragments",
    [
        ("flipped-signature", {"publish": (f"{SDIST}.publish.attestation", flip_signature)},
         ["signature: the DSSE signature does not verify"]),
        ("another-files-attestation", {"publish": GITLAB_SDIST + ".publish.attestation"},
         ["subject: the statement is about", GITLAB_SDIST]),
        ("two-of-one-type", {"publish": f"{SDIST}.publish.attestation", "again": f"{SDIST}.publish.attestation"},
         ["at most one"]),
        ("unknown-version", {"publish": (f"{SDIST}.publish.attestation", lambda v: v.update(version=2))},
         ["unsupported attestation version 2"]),
        ("rekor-v2", {"publish": (f"{SDIST}.publish.attestation", drop_integrated_time)},
         ["transparency entry:", "Rekor v2", "RFC 3161"]),
        ("not-a-list", {"publish": b'"not an attestation"'}, ["format:", "not a JSON object"]),
    ],
)
def test_a_bad_attestation_refuses_the_whole_upload(refusing, issuers, clients, tmp_path, case, attestations, fragments):
    files = {suffix: tampered(*spec) if isinstance(spec, tuple) else spec for suffix, spec in attestations.items()}
    token = minted(refusing, issuers.gh.sign(github_claims(issuers.gh, REPO, **REPO_IDS)))
    refused(clients, refusing, token, staged(tmp_path, SDIST, files), *fragments)
    assert_nothing_stored(refusing)


def test_a_subject_digest_for_another_file_is_refused(refusing, issuers, clients, tmp_path):
    """The real attestation of the sdist, sent with another file of that name: the signature and
    the log entry verify, the subject's sha256 does not."""
    token = minted(refusing, issuers.gh.sign(github_claims(issuers.gh, REPO, **REPO_IDS)))
    impostor = SdistBuilder("pypi_attestations", "0.0.19").build(tmp_path)
    folder = tmp_path / "impostor"
    folder.mkdir()
    target = folder / SDIST
    target.write_bytes(impostor.read_bytes())
    (folder / f"{SDIST}.publish.attestation").write_bytes((FIXTURES / f"{SDIST}.publish.attestation").read_bytes())
    refused(clients, refusing, token, target, "subject: the statement's subject sha256")
    assert_nothing_stored(refusing)


def test_a_publisher_for_another_repository_is_refused_on_identity(refusing, issuers, clients, tmp_path):
    token = minted(refusing, issuers.gh.sign(github_claims(issuers.gh, "someone/else")))
    path = staged(tmp_path, SDIST, {"publish": f"{SDIST}.publish.attestation"})
    out = refused(clients, refusing, token, path, "identity:", "someone/else", REPO)
    assert "trusted publisher that uploaded" in out
    assert_nothing_stored(refusing)


def test_a_recreated_repository_of_the_same_name_is_refused(make_server, issuers, clients, tmp_path):
    """A publisher binds the ids of its first job. Here that job came from a re-created
    `trailofbits/pypi-attestations` (other ids); the real certificate names the original
    repository's ids, so its attestation is refused on identity."""
    srv = make_server({"PALISADE_OIDC_GITHUB_ISSUER": issuers.gh.url, "PALISADE_OIDC_ALLOW_INSECURE_LOOPBACK": "true"})
    srv.create_user("owner")
    srv.cli("publisher", "add", "pypi-attestations", "--github", REPO, "--workflow", "release.yml", "--owner", "owner")
    token = minted(srv, issuers.gh.sign(github_claims(issuers.gh, REPO, repository_owner_id="1", repository_id="2")))
    path = staged(tmp_path, SDIST, {"publish": f"{SDIST}.publish.attestation"})
    refused(clients, srv, token, path, "identity:", "source_repository_owner_identifier")
    assert_nothing_stored(srv)


def test_a_staging_signature_fails_on_the_trust_root(refusing, issuers, clients, tmp_path):
    token = minted(refusing, issuers.gh.sign(github_claims(issuers.gh, REPO, **REPO_IDS)))
    path = staged(tmp_path, STAGING_WHEEL, {"publish": f"{STAGING_WHEEL}.publish.attestation"})
    refused(clients, refusing, token, path, "trust root:", "public-good")
    assert refusing.project_files("rfc8785") == {}


def test_the_gitlab_attestation_through_a_gitlab_publisher(srv, owner, issuers, clients, tmp_path):
    srv.cli("publisher", "add", "gitlab-oidc-project", "--gitlab", GITLAB_PROJECT, "--ci-config", ".gitlab-ci.yml", "--owner", "owner")
    token = minted(srv, issuers.gl.sign(gitlab_claims(issuers.gl, GITLAB_PROJECT)))
    path = staged(tmp_path, GITLAB_SDIST, {"publish": f"{GITLAB_SDIST}.publish.attestation"})
    twine_attested(clients, srv, token, path, check=True)
    r = provenance(srv, "gitlab-oidc-project", "0.0.3", GITLAB_SDIST)
    assert r.status_code == 200, r.text
    bundle = r.json()["attestation_bundles"][0]
    assert bundle["publisher"]["kind"] == "GitLab" and bundle["publisher"]["repository"] == GITLAB_PROJECT
    dist = Distribution.from_file(FIXTURES / GITLAB_SDIST)
    prov = Provenance.model_validate_json(r.text)
    checked = 0
    for b in prov.attestation_bundles:
        for a in b.attestations:
            a.verify(b.publisher, dist, offline=True)
            checked += 1
    assert checked == 1


def test_a_project_may_require_attestations(srv, owner, clients, tmp_path):
    project = "attested-by-token"
    w = WheelBuilder(project, "1.0").build(tmp_path)
    clients.twine_upload(srv, owner.token, w)
    r = srv.api("GET", f"/api/projects/{project}/settings", owner.token)
    assert r.status_code == 200 and r.json()["require_attestations"] is False, r.text

    srv.cli("project", "require-attestations", project)
    assert srv.api("GET", f"/api/projects/{project}/settings", owner.token).json()["require_attestations"] is True
    w2 = WheelBuilder(project, "2.0").build(tmp_path)
    proc = clients.twine_upload(srv, owner.token, w2, check=False)
    assert "requires a valid PEP 740 attestation" in flat(proc), clients.describe(proc)
    assert w2.name not in srv.project_files(project)

    # The owner turns it off through the API, with a login session: a token may read the setting
    # but not lift it (a leaked token must not unlock itself). A malformed body is a 400.
    session = srv.accounts["owner"]["session"]
    assert srv.api("PUT", f"/api/projects/{project}/settings", owner.token, json={"require_attestations": False}).status_code == 403
    assert srv.api("PUT", f"/api/projects/{project}/settings", session, json={"require_attestations": "yes"}).status_code == 400
    r = srv.api("PUT", f"/api/projects/{project}/settings", session, json={"require_attestations": False})
    assert r.status_code == 200 and r.json()["require_attestations"] is False, r.text
    clients.twine_upload(srv, owner.token, w2)
    srv.cli("project", "require-attestations", project, "--off")


def test_an_api_token_upload_is_attested_by_a_registered_publisher(refusing, clients, tmp_path):
    """Beyond PyPI: an owner's API token uploads the sdist with its real attestation, accepted
    because the signer is one of the project's registered trusted publishers. (Last in the
    module: after it the refusal server holds the sdist.)"""
    token = refusing.create_token("owner")
    first = WheelBuilder("pypi-attestations", "0.0.1").build(tmp_path)
    clients.twine_upload(refusing, token, first)
    # The pending publishers were for creating the project: once a user created it, only the
    # project's own registered publishers count (as on PyPI, pending ones are then skipped).
    path = staged(tmp_path, SDIST, {"publish": f"{SDIST}.publish.attestation"})
    refused(clients, refusing, token, path, "identity:", "no trusted publisher")
    refusing.cli("publisher", "add", "pypi-attestations", "--github", REPO, "--workflow", "release.yml")
    refusing.cli("project", "require-attestations", "pypi-attestations")
    # Without attestations, under the requirement: refused.
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(FIXTURES / SDIST, bare / SDIST)
    proc = clients.twine_upload(refusing, token, bare / SDIST, check=False)
    assert "requires a valid PEP 740 attestation" in flat(proc), clients.describe(proc)
    twine_attested(clients, refusing, token, path, check=True)
    r = provenance(refusing, "pypi-attestations", "0.0.19", SDIST)
    assert r.status_code == 200, r.text
    assert r.json()["attestation_bundles"][0]["publisher"]["repository"] == REPO
