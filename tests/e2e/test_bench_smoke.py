"""Smoke runs of the benchmark harnesses in bench/: tiny sizes, Palisade alone, a few seconds each.

Their figures mean nothing; the point is that the harnesses still set up, load and measure against
today's binary. `bench/run.py` stopped running unnoticed when two-factor authentication became
the default (issue 13: `token create --user bench` refused a user without a second factor, then
every upload was refused). Nothing here downloads or installs anything: `run.py --smoke` runs
Palisade alone (no pypiserver, devpi or nginx), uses a Python load loop when `wrk` is missing and
the twine of this venv. Each harness gets its own folders under the test's tmp_path and picks free
loopback ports itself.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from support import isolated_env

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from wheels import ensure_wheels  # noqa: E402

ENDPOINTS = ["simple_html", "simple_json", "project_html", "project_json", "project_random_html", "file", "web_project"]
REPORT_LABELS = ["/simple/ (HTML)", "/simple/ (JSON)", "/simple/<p>/ (HTML)", "/simple/<p>/ (JSON)",
                 "random <p> (HTML)", "file download"]


def run_harness(tmp_path: Path, palisade_bin: Path, argv: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
    """Runs a harness with this venv's Python (stdlib is all they need, and its twine is there),
    in an environment without inherited PALISADE_* settings, so the server runs the default policy."""
    env = isolated_env(tmp_path / "env", {"PALISADE_BIN": str(palisade_bin)})
    proc = subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=timeout, stdin=subprocess.DEVNULL)
    proc.output = f"$ {' '.join(map(str, argv))}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"  # type: ignore[attr-defined]
    return proc


def log_tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return f"(no {path})"
    return f"--- {path} ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def positive(x) -> bool:
    return isinstance(x, (int, float)) and x > 0


def test_run_py_smoke_sets_up_uploads_and_measures_palisade(tmp_path, palisade_bin):
    """`run.py --smoke`: the bench user set up as a person would under the default policy (TOTP
    enrolled over the API, then a token), every wheel uploaded (timed in two blocks), every
    endpoint checked and measured, a restart timed, twine's upload timed; all positive figures."""
    work = tmp_path / "work"
    proc = run_harness(tmp_path, palisade_bin, [BENCH / "run.py", "--smoke", "--work", work])
    results_path = work / "results.json"
    context = proc.output + "\n" + log_tail(work / "run" / "palisade.log")
    assert proc.returncode == 0, context
    assert results_path.exists(), context
    res = json.loads(results_path.read_text())

    assert res["meta"]["smoke"] is True
    assert res["meta"]["servers"] == ["palisade"], context
    scales = [int(s) for s in res["scales"]]
    assert scales == res["meta"]["scales"] and scales, res["meta"]
    conns = [str(c) for c in res["meta"]["connections"]]
    prev = 0
    for scale in scales:
        pal = res["scales"][str(scale)]["palisade"]
        assert "error" not in pal, f"@{scale}: {pal.get('error')}\n{context}"
        load = pal["load"]
        # Every new file of this scale was accepted, none failed.
        assert load["upload_files"] == 3 * (scale - prev), (scale, load)
        assert all(b["failed"] == 0 and not b["timed_out"] for b in load["upload_blocks"]), load["upload_blocks"]
        assert positive(load["upload_files_per_s"]), load
        assert positive(load["startup_empty_s" if prev == 0 else "startup_before_load_s"]), load
        assert pal["checks"] == {k: "ok" for k in ENDPOINTS}, pal["checks"]
        for key in ENDPOINTS:
            for c in conns:
                r = pal["wrk"][key][c]
                assert r["ok"] and not r["errors"], (scale, key, c, r)
                assert positive(r["rps"]) and positive(r["requests"]) and positive(r["bytes_per_req"]), (scale, key, r)
                assert positive(r["p50_ms"]) and r["p99_ms"] >= r["p50_ms"], (scale, key, r)
        assert positive(pal["startup_s"]), pal
        assert positive(pal["rss_after_load"]["tree_kib"]) and positive(pal["rss_after_wrk"]["tree_kib"]), pal
        prev = scale

    blocks = [b for s in scales for b in res["scales"][str(s)]["palisade"]["load"]["upload_blocks"]]
    assert len(blocks) >= 2 and all(positive(b["files_per_s"]) for b in blocks), blocks
    judged = {t["target"]: t["status"] for t in res["targets"]}
    # The figures are tiny-scale noise, so only that each target could be judged is asserted.
    assert judged.get("uploads do not slow as the repository grows") in ("PASS", "FAIL"), res["targets"]
    assert judged.get(f"start-up < 100 ms @{scales[-1]:,}") in ("PASS", "FAIL"), res["targets"]

    twine = res["twine"]["palisade"]
    assert twine["rc"] == 0, twine
    assert twine["files"] > 0 and positive(twine["files_per_s"]), twine

    # The printed report carries the same figures: a number per endpoint and scale.
    report = (work / "report.txt").read_text()
    assert report.strip() in proc.stdout
    for scale in scales:
        section = report.split(f"=== {scale:,} projects ({scale * 3:,} files)", 1)[1].split("latency p50", 1)[0]
        for label in REPORT_LABELS:
            m = re.search(rf"^{re.escape(label)}\s+{conns[0]}\s+([\d,.]+)\*?\s*$", section, re.M)
            assert m and float(m.group(1).replace(",", "")) > 0, f"@{scale} {label}:\n{section}"
    assert re.search(r"twine upload.*\n\s+palisade\s+\d+ files in [\d.]+s = [\d.]+ files/s", report), report


def test_hostile_memory_smoke_reports_memory(tmp_path, palisade_bin):
    """`hostile_memory.py --smoke`: one fresh server, a handful of held slow bodies, and the
    server's memory before, at the peak and after, with what the connections were answered."""
    proc = run_harness(tmp_path, palisade_bin, [BENCH / "hostile_memory.py", "--smoke", "--bin", palisade_bin], timeout=120)
    assert proc.returncode == 0, proc.output
    rows = re.findall(r"^login\s+declared\s+(\d+)Mi\s+(\d+)Mi\s+(\d+)Mi\s+[+-]\d+Mi\s+(.+)$", proc.stdout, re.M)
    assert len(rows) == 1, proc.output
    before, peak, after, answers = rows[0]
    assert all(int(x) > 0 for x in (before, peak, after)), proc.output
    assert "SERVER DIED" not in answers and re.match(r"\d+ ", answers), proc.output


def smoke_files(root: Path) -> list[Path]:
    """The benchmark's three wheels of one project and a small sdist, made here (nothing from
    the corpus)."""
    wheels = [w.path for w in ensure_wheels(root / "wheels", 1, log=lambda *_: None)]
    sdist = root / "smokepkg-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name, text in (
            ("smokepkg-1.0/PKG-INFO", "Metadata-Version: 2.1\nName: smokepkg\nVersion: 1.0\n"),
            ("smokepkg-1.0/setup.py", "from setuptools import setup\nsetup(name='smokepkg', version='1.0')\n"),
            ("smokepkg-1.0/smokepkg/__init__.py", "VALUE = 1\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return [*wheels, sdist]


def test_upload_scan_time_smoke_prints_timings(tmp_path, palisade_bin):
    """`upload_scan_time.py` on a folder of three files: the cold pass and the release-order pass
    each give a median and p95 over all of them, and a time per release."""
    files = smoke_files(tmp_path / "dists")
    proc = run_harness(tmp_path, palisade_bin, [BENCH / "upload_scan_time.py", "--dir", tmp_path / "dists",
                                                "--palisade-bin", palisade_bin, "--threads", "1"], timeout=120)
    assert proc.returncode == 0, proc.output
    rows = re.findall(r"^\s+all\s+median\s+([\d.]+) ms\s+p95\s+([\d.]+) ms.*\(n=(\d+)\)$", proc.stdout, re.M)
    assert len(rows) == 2, proc.output  # cold (one thread), then release order
    for median, p95, n in rows:
        assert int(n) == len(files), proc.output
        assert float(p95) >= float(median) and float(p95) > 0, proc.output
    assert re.search(r"per release \(sdist \+ wheel\): median\s+[\d.]+ ms\s+p95\s+[\d.]+ ms\s+\(n=\d+\)", proc.stdout), proc.output


def test_scan_eval_smoke_on_a_stand_in_corpus(tmp_path, palisade_bin):
    """`scan_eval.py` on a corpus of the same layout as shared/corpus, filled with files made here
    (the "malicious" zip holds harmless stand-ins), GuardDog off: Palisade's detection and
    false-positive rates come out with their counts, and a positive median time."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    benign_dir = tmp_path / "benign"
    made = smoke_files(tmp_path / "made")
    with (corpus / "malicious-dev.tsv").open("w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["path", "cluster"])
        for p in made:
            w.writerow([f"stand-in/{p.name}", p.name])
    with zipfile.ZipFile(corpus / "malicious-dev.zip", "w") as z:
        for p in made:
            z.write(p, f"stand-in/{p.name}")
    with (corpus / "benign-dev.tsv").open("w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["path", "name", "kind", "sha256"])
        for p in made:
            (benign_dir / "b").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, benign_dir / "b" / p.name)
            w.writerow([f"b/{p.name}", p.name.split("-")[0], "sdist" if p.name.endswith(".tar.gz") else "wheel", ""])
    # The benign set is already in place; the real fetch-benign.py would download what is missing.
    (corpus / "fetch-benign.py").write_text("import sys\nsys.exit(0)\n")

    scratch = Path(tempfile.mkdtemp(prefix="palisade-scan-eval-smoke-", dir="/tmp"))  # the harness insists on /tmp
    out = tmp_path / "scan_eval.json"
    try:
        proc = run_harness(tmp_path, palisade_bin, [
            BENCH / "scan_eval.py", "--corpus", corpus, "--benign-dir", benign_dir, "--scratch", scratch,
            "--guarddog-sample", "0", "--palisade-bin", palisade_bin, "--out", out,
            # Release pairs ask the package index for earlier releases: not from a test.
            "--release-pairs", "0",
        ], timeout=120)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert proc.returncode == 0, proc.output
    doc = json.loads(out.read_text())
    pal = doc["palisade"]
    assert pal["available"], (pal, proc.output)
    full = pal["full"]
    assert full["detection"]["of"] == len(made) and full["detection"]["rate"] is not None, full["detection"]
    assert full["fp"]["wheel"]["of"] == 3 and full["fp"]["sdist"]["of"] == 1, full["fp"]
    assert positive(full["time"]["median_ms"]) and full["time"]["n"] == 2 * len(made), full["time"]
    assert not full["errors"]["malicious"] and not full["errors"]["benign"], full["errors"]
    assert all(r["palisade"]["verdict"] in ("clean", "suspicious", "malicious") for r in doc["per_file"]), doc["per_file"]
    assert doc["guarddog"]["skipped"] == "--guarddog-sample 0"
    assert "detection" in proc.stdout.lower(), proc.output


def test_provenance_smoke_measures_the_log_and_attestations(tmp_path, palisade_bin):
    """`provenance.py --smoke`, without a baseline build: uploads with the log on, the server's
    attestation checks (each refused at identity after full verification), and the time to a
    checkpoint covering an upload."""
    proc = run_harness(tmp_path, palisade_bin, [BENCH / "provenance.py", "--smoke", "--work", tmp_path / "work"], timeout=240)
    assert proc.returncode == 0, proc.output
    results = json.loads((tmp_path / "work" / "results.json").read_text())
    assert positive(results["uploads_per_s"]["log-on"]), results
    assert "log_on_vs_off" not in results, "no baseline was given"
    assert results["attestation_ms"]["samples"] == 5 and positive(results["attestation_ms"]["median"]), results
    assert results["checkpoint_s"]["samples"] == 3 and 0 < results["checkpoint_s"]["max"] < 30, results
    assert re.search(r"attestations/file ms median [\d.]+, p99 [\d.]+", proc.stdout), proc.output


def test_osv_feed_smoke_syncs_and_enforces_a_feed(tmp_path, palisade_bin):
    """`osv_feed.py --smoke`: a feed of synthetic records synced from the CLI, enforced by the
    running server, synced again unchanged and with changes, with uploads timed during a sync."""
    proc = run_harness(tmp_path, palisade_bin, [BENCH / "osv_feed.py", "--smoke", "--work", tmp_path / "work"], timeout=240)
    assert proc.returncode == 0, proc.output
    results = json.loads((tmp_path / "work" / "results.json").read_text())
    assert results["records"] == 200 and positive(results["first_sync_s"]), results
    assert 0 <= results["reload_after_sync_s"] < 30 and positive(results["unchanged_sync_s"]), results
    assert positive(results["upload_idle_median_ms"]), results
    assert "200 added" in proc.stdout and "10 changed" in proc.stdout, proc.output
