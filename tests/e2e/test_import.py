"""`palisade import DIR --owner USER`: a folder of distributions as pypiserver keeps them, loaded
through the publishing pipeline. Good files are published and installable; hostile and invalid
ones are reported and skipped, as an upload of them would be refused; a rerun changes nothing."""

from __future__ import annotations

from distbuilder import SdistBuilder, WheelBuilder, file_sha256
from support import DROPPER_SETUP, installed_versions


def test_a_pypiserver_folder_is_imported_through_the_pipeline(make_server, clients, tmp_path):
    srv = make_server()
    srv.create_user("importer")
    packages = tmp_path / "packages"
    # pypiserver's two layouts at once: files at the top, and one folder per project.
    (packages / "unrelated-tool").mkdir(parents=True)
    good = [
        WheelBuilder("imported-a", "1.0").build(packages),
        WheelBuilder("imported-a", "1.1").build(packages),
        SdistBuilder("imported-a", "1.1").build(packages),
        WheelBuilder("unrelated-tool", "0.1").build(packages / "unrelated-tool"),
    ]
    dropper = SdistBuilder("imported-dropper", "1.0", extra_files={"imported_dropper-1.0/setup.py": DROPPER_SETUP.encode()}).build(packages)
    liar = WheelBuilder("imported-liar", "1.0", metadata_name="someone-else").build(packages / "unrelated-tool")
    (packages / "README.txt").write_text("not a distribution\n")
    (packages / "empty-1.0.tar.gz").write_bytes(b"")

    proc = srv.cli("import", str(packages), "--owner", "importer", check=False, timeout=300)
    assert proc.returncode == 1, proc  # some files were refused
    assert "imported 4 file(s) (0 of them held for review), 0 already present, 3 refused, 1 skipped" in proc.stderr, proc.stderr
    refused = {line.split("\t")[1].rsplit("/", 1)[-1]: line.split("\t")[2] for line in proc.stdout.splitlines() if line.startswith("refused\t")}
    assert set(refused) == {dropper.name, liar.name, "empty-1.0.tar.gz"}, proc.stdout
    assert "malware scanner" in refused[dropper.name], refused
    assert "does not match the filename" in refused[liar.name], refused
    assert "is empty" in refused["empty-1.0.tar.gz"], refused
    assert "skipped" in proc.stderr and "README.txt" in proc.stderr, proc.stderr

    # The good files are listed with their hashes and installable; the refused ones are not there.
    listed = srv.project_files("imported-a")
    assert {f: listed[f]["hashes"]["sha256"] for f in listed} == {p.name: file_sha256(p) for p in good[:3]}
    assert srv.simple_json("imported-dropper").status_code == 404
    assert srv.simple_json("imported-liar").status_code == 404
    target = tmp_path / "target"
    clients.pip_install(srv, "imported-a", "unrelated-tool", target=target)
    versions = installed_versions(target)
    assert (versions["imported-a"], versions["unrelated-tool"]) == ("1.1", "0.1"), versions
    # The importer owns what the import created, and the event log says how it arrived.
    roles = srv.cli("role", "list", "imported-a").stdout
    assert "importer" in roles and "owner" in roles, roles
    audit = srv.cli("audit", "--project", "imported-a", "--json").stdout
    assert audit.count('"file_uploaded"') == 3 and "palisade import" in audit, audit
    srv.assert_no_debris()

    # A rerun publishes nothing twice.
    again = srv.cli("import", str(packages), "--owner", "importer", check=False, timeout=300)
    assert "imported 0 file(s) (0 of them held for review), 4 already present, 3 refused, 1 skipped" in again.stderr, again.stderr


def test_import_refuses_what_the_owner_may_not_publish(make_server, clients, tmp_path):
    srv = make_server()
    srv.create_user("first-owner")
    srv.create_user("outsider")
    token = srv.create_token("first-owner")
    clients.twine_upload(srv, token, WheelBuilder("owned-elsewhere", "1.0").build(tmp_path / "up"))
    packages = tmp_path / "packages"
    packages.mkdir()
    newer = WheelBuilder("owned-elsewhere", "2.0").build(packages)
    proc = srv.cli("import", str(packages), "--owner", "outsider", check=False)
    assert proc.returncode == 1
    assert f"refused\t{newer}" in proc.stdout and "not an owner or maintainer" in proc.stdout, proc.stdout
    assert list(srv.project_files("owned-elsewhere")) == ["owned_elsewhere-1.0-py3-none-any.whl"]
    missing = srv.cli("import", str(packages), "--owner", "nobody", check=False)
    assert missing.returncode == 1 and "nobody" in missing.stderr, missing.stderr


def test_an_administrator_importing_does_not_reach_into_other_peoples_projects(make_server, clients, tmp_path):
    srv = make_server()
    srv.create_user("someone")
    srv.create_user("the-admin", admin=True)
    token = srv.create_token("someone")
    clients.twine_upload(srv, token, WheelBuilder("someones-project", "1.0").build(tmp_path / "up"))
    packages = tmp_path / "packages"
    packages.mkdir()
    WheelBuilder("someones-project", "9.0").build(packages)
    fresh = WheelBuilder("admins-own", "1.0").build(packages)
    proc = srv.cli("import", str(packages), "--owner", "the-admin", check=False)
    assert proc.returncode == 1, proc
    assert "not an owner or maintainer" in proc.stdout, proc.stdout
    assert list(srv.project_files("someones-project")) == ["someones_project-1.0-py3-none-any.whl"]
    assert list(srv.project_files("admins-own")) == [fresh.name]


def test_names_that_are_not_regular_files_are_skipped(make_server, tmp_path):
    import os

    srv = make_server()
    srv.create_user("importer")
    packages = tmp_path / "packages"
    packages.mkdir()
    wheel = WheelBuilder("fifo-neighbour", "1.0").build(packages)
    os.mkfifo(packages / "waiting-1.0.tar.gz")
    os.symlink(wheel, packages / "linked-1.0-py3-none-any.whl")
    proc = srv.cli("import", str(packages), "--owner", "importer", check=False, timeout=60)
    assert proc.returncode == 0, proc
    assert "imported 1 file(s)" in proc.stderr and "2 skipped" in proc.stderr, proc.stderr
    assert list(srv.project_files("fifo-neighbour")) == [wheel.name]
