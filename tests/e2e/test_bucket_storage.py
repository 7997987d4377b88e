"""Files kept in an S3-compatible bucket (`storage.url = "s3://BUCKET/PREFIX"`), against a real
S3 server: `scripts/test` starts moto in server mode and sets PALISADE_TEST_S3_ENDPOINT. The
server reaches it through the standard AWS_* variables, as an operator's would.

Uploads with twine, installs with pip and uv, ranged downloads, presigned redirects, removal,
rescans and the CLI all go through the bucket; nothing of a file's bytes stays on the node."""

from __future__ import annotations

import hashlib
import os
import secrets

import pytest
import requests

from distbuilder import SdistBuilder, WheelBuilder, file_sha256
from support import eventually, installed_versions, is_digest

INSTALLERS = ["pip", "uv"]
PREFIX = "blobs"


@pytest.fixture(scope="module")
def s3():
    endpoint = os.environ.get("PALISADE_TEST_S3_ENDPOINT")
    if not endpoint:
        pytest.skip("PALISADE_TEST_S3_ENDPOINT is not set (scripts/test starts moto and sets it)")
    import boto3

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def new_bucket(s3) -> str:
    name = f"palisade-e2e-{secrets.token_hex(5)}"
    s3.create_bucket(Bucket=name)
    return name


def bucket_env(s3, bucket: str, **extra: str) -> dict[str, str]:
    return {
        "PALISADE_STORAGE_URL": f"s3://{bucket}/{PREFIX}",
        "AWS_ENDPOINT_URL": s3.meta.endpoint_url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ALLOW_HTTP": "true",
        **extra,
    }


def objects(s3, bucket: str) -> dict[str, bytes]:
    """sha256 -> bytes of every object under the prefix."""
    out = {}
    for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/").get("Contents", []):
        name = o["Key"].rsplit("/", 1)[-1]
        if is_digest(name):  # not the palisade-instance marker
            out[name] = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
    return out


@pytest.fixture(scope="module")
def cluster_files(s3, palisade_bin, tmp_path_factory, module_clients):
    from support import Server

    bucket = new_bucket(s3)
    srv = Server(palisade_bin, tmp_path_factory.mktemp("srv-bucket"), "test_bucket_storage", bucket_env(s3, bucket)).start()
    srv.create_user("bucketeer")
    token = srv.create_token("bucketeer")
    d = tmp_path_factory.mktemp("bucket-dists")
    built = {
        "wheel": WheelBuilder("bucket-e2e", "1.0").build(d),
        "sdist": SdistBuilder("bucket-e2e", "1.0").build(d),
        "wheel2": WheelBuilder("bucket-e2e", "2.0").build(d),
    }
    module_clients.twine_upload(srv, token, *built.values())
    yield srv, bucket, built, token
    srv.stop()


def test_uploads_land_in_the_bucket_whole_and_nowhere_else(s3, cluster_files):
    srv, bucket, built, _ = cluster_files
    stored = objects(s3, bucket)
    assert set(stored) == {file_sha256(p) for p in built.values()}
    for path in built.values():
        assert stored[file_sha256(path)] == path.read_bytes(), path.name
    # The node keeps no copy: no blob folder, and no temporary file left behind.
    assert not (srv.data_dir / "files").exists()
    assert srv.tmp_entries() == []


@pytest.mark.parametrize("installer", INSTALLERS)
def test_pip_and_uv_install_from_a_bucket(cluster_files, clients, tmp_path, installer):
    srv, _, built, _ = cluster_files
    req = tmp_path / "requirements.txt"
    req.write_text(f"bucket-e2e==2.0 --hash=sha256:{file_sha256(built['wheel2'])}\n")
    target = tmp_path / "target"
    fn = clients.pip_install if installer == "pip" else clients.uv_install
    fn(srv, target=target, extra=["--require-hashes", "-r", str(req)])
    assert installed_versions(target)["bucket-e2e"] == "2.0"


def test_downloads_stream_from_the_bucket_with_ranges(cluster_files):
    srv, _, built, _ = cluster_files
    data = built["sdist"].read_bytes()
    url = f"{srv.url}/files/{built['sdist'].name}"
    whole = requests.get(url, timeout=30)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    part = requests.get(url, headers={"Range": "bytes=10-99"}, timeout=30)
    assert part.status_code == 206, part.status_code
    assert part.content == data[10:100]
    assert part.headers["Content-Range"] == f"bytes 10-99/{len(data)}"
    tail = requests.get(url, headers={"Range": "bytes=-7"}, timeout=30)
    assert tail.status_code == 206 and tail.content == data[-7:]
    assert requests.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=30).status_code == 416


def test_cli_and_rescan_work_on_the_bucket(s3, cluster_files):
    srv, bucket, built, _ = cluster_files
    # The CLI opens the same storage from the same variables: a rescan reads every file back.
    out = srv.cli("rescan")
    assert "rescanned 3 file(s)" in out.stderr, out.stderr
    assert "missing" not in out.stderr.lower(), out.stderr
    # Removing a file removes its object, once nothing else references the bytes.
    srv.cli("remove-file", built["wheel"].name)
    eventually(lambda: _assert_absent(s3, bucket, file_sha256(built["wheel"])))
    assert requests.get(f"{srv.url}/files/{built['wheel'].name}", timeout=30).status_code == 404
    assert file_sha256(built["sdist"]) in objects(s3, bucket)


def _assert_absent(s3, bucket: str, sha: str) -> None:
    assert sha not in objects(s3, bucket)


def test_acknowledged_uploads_survive_kill_9(s3, cluster_files, clients, tmp_path):
    srv, bucket, _, token = cluster_files
    late = WheelBuilder("bucket-e2e", "3.0").build(tmp_path)
    clients.twine_upload(srv, token, late)
    srv.kill9()
    srv.start()
    got = requests.get(f"{srv.url}/files/{late.name}", timeout=30)
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == file_sha256(late)
    assert file_sha256(late) in objects(s3, bucket)


def test_presigned_downloads_redirect_to_the_bucket(s3, make_server, clients, tmp_path):
    bucket = new_bucket(s3)
    srv = make_server(bucket_env(s3, bucket, PALISADE_STORAGE_PRESIGNED_DOWNLOADS_SECS="120"))
    srv.create_user("presigner")
    token = srv.create_token("presigner")
    wheel = WheelBuilder("presigned-e2e", "1.0").build(tmp_path / "d")
    clients.twine_upload(srv, token, wheel)
    r = requests.get(f"{srv.url}/files/{wheel.name}", allow_redirects=False, timeout=30)
    assert r.status_code == 307, r.status_code
    location = r.headers["Location"]
    assert location.startswith(s3.meta.endpoint_url) and "X-Amz-Signature=" in location, location
    assert "no-store" in r.headers["Cache-Control"]
    followed = requests.get(location, timeout=30)
    assert followed.status_code == 200 and followed.content == wheel.read_bytes()
    # pip follows the redirect and checks the hash it was given by the index.
    target = tmp_path / "target"
    clients.pip_install(srv, "presigned-e2e", target=target)
    assert installed_versions(target)["presigned-e2e"] == "1.0"


def test_a_missing_bucket_stops_the_start_with_a_clear_error(s3, make_server):
    srv = make_server(bucket_env(s3, "palisade-e2e-no-such-bucket"), start=False)
    proc = srv.cli("user", "list", check=False)
    assert proc.returncode == 1, proc
    assert "s3://palisade-e2e-no-such-bucket/blobs" in proc.stderr and "does not exist" in proc.stderr, proc.stderr
    bad = make_server({"PALISADE_STORAGE_URL": "s3://Not_A_Bucket"}, start=False)
    proc = bad.cli("user", "list", check=False)
    assert proc.returncode != 0 and "is not a bucket name" in proc.stderr, proc.stderr
