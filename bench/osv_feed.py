#!/usr/bin/env python3
"""An OSV feed at the size of the real one, measured (issue 16), in one run.

ossf/malicious-packages holds some 15,000 records for PyPI and grows by hundreds a week. This
harness writes N synthetic records shaped like the real ones (`MAL-` ids, CWE-506, two files'
hashes in `package_integrity`, multi-kilobyte details) into a folder, starts an embedded server
that hosts one of the listed releases, and times:

1. the first `palisade osv sync` of the whole folder (CLI wall time: read, parse, store);
2. how long after that sync the running server stops listing the hosted release (its poll of the
   database, the reload of every blocking record, the dropped pages);
3. a sync that finds nothing changed, and one after 10 records changed (the steady state of a
   feed read every few minutes);
4. uploads while a sync of N changed records runs: the write lock a sync holds delays them.

    cargo build --release
    python3 bench/osv_feed.py --bin target/release/palisade          # 20,000 records
    python3 bench/osv_feed.py --smoke                                # tiny: does it still run?

Stdlib only. Figures from one run on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import uploader  # noqa: E402
from servers import Palisade  # noqa: E402
from wheels import ensure_wheels  # noqa: E402

DETAILS = (
    "\n---\n_-= Per source details. Do not edit below this line.=-_\n\n## Source: example-scanner\n"
    + "On import, the package collects environment variables and sends them to a remote host. " * 30
)


def log(msg: str) -> None:
    print(msg, flush=True)


def record(i: int, generation: int = 0, hosted: tuple[str, str] | None = None) -> dict:
    name, version = hosted if hosted and i == 0 else (f"bench-mal-{i}", "0.0.1")
    digest = lambda s: hashlib.sha256(f"{s}-{i}-{generation}".encode()).hexdigest()  # noqa: E731
    return {
        "schema_version": "1.7.4",
        "id": f"MAL-2026-{100000 + i}",
        "published": "2026-01-01T00:00:00Z",
        "modified": f"2026-01-01T00:00:{generation:02d}Z",
        "summary": f"Malicious code in {name} (PyPI)",
        "details": DETAILS,
        "affected": [{
            "package": {"ecosystem": "PyPI", "name": name},
            "versions": [version],
            "database_specific": {
                "cwes": [{"cweId": "CWE-506", "description": "The product contains code that appears to be malicious in nature.", "name": "Embedded Malicious Code"}],
                "indicators": {"package_integrity": [
                    {"filename": f"{name}-{version}.tar.gz", "hashes": {"sha256": digest("sdist")}},
                    {"filename": f"{name.replace('-', '_')}-{version}-py3-none-any.whl", "hashes": {"sha256": digest("wheel")}},
                ]},
            },
        }],
        "credits": [{"name": "Bench", "type": "FINDER", "contact": ["https://example.test"]}],
        "database_specific": {"malicious-packages-origins": [{"source": "bench", "sha256": digest("origin"), "import_time": "2026-01-01T00:00:00Z", "modified_time": "2026-01-01T00:00:00Z"}]},
    }


def write_feed(folder: Path, n: int, hosted: tuple[str, str], changed: range = range(0), generation: int = 0) -> None:
    for i in range(n):
        path = folder / "osv" / "malicious" / "pypi" / f"r{i // 1000}" / f"MAL-2026-{100000 + i}.json"
        if path.exists() and i not in changed:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record(i, generation if i in changed else 0, hosted), indent=2))


def sync(srv: Palisade, env: dict) -> float:
    started = time.monotonic()
    proc = subprocess.run([str(srv.binary), "--data-dir", str(srv.data), "osv", "sync"], env=env, capture_output=True, text=True, timeout=1800)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"osv sync failed:\n{proc.stderr}")
    log(f"    {proc.stderr.strip().splitlines()[-1]}")
    return elapsed


def timed_upload(srv: Palisade, w) -> float:
    t = time.monotonic()
    r = uploader.upload(srv.upload_url(), [w], auth=uploader.basic_auth("__token__", srv.token), concurrency=1)
    if r.ok != 1:
        raise SystemExit(f"upload of {w.filename} failed: {r.statuses} {r.first_error}")
    return time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_bin = os.environ.get("PALISADE_BIN") or BENCH.parent / "target" / "release" / "palisade"
    ap.add_argument("--bin", type=Path, default=Path(default_bin))
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--uploads", type=int, default=1500, help="wheels at hand: 20 idle uploads, the rest while a sync runs, until it ends")
    ap.add_argument("--smoke", action="store_true", help="200 records, a few uploads")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    if args.smoke:
        args.records, args.uploads = 200, 30
    work = (args.work or Path(tempfile.mkdtemp(prefix="palisade-osv-bench-"))).resolve()
    run_dir = work / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = SimpleNamespace(run_dir=run_dir, log=log)
    wheels = ensure_wheels(work / "wheels", args.uploads + 1, log=log)[: args.uploads + 1]
    hosted = wheels[0]
    folder = work / "feed"
    t = time.monotonic()
    write_feed(folder, args.records, (hosted.name, hosted.version))
    size = sum(p.stat().st_size for p in folder.rglob("*.json"))
    log(f"feed: {args.records} records, {size / 1e6:.1f} MB, written in {time.monotonic() - t:.1f} s")

    config = work / "palisade.toml"
    config.write_text(f'[[sharing.feeds]]\nname = "bench"\nsource = "{folder}"\ninterval = "1h"\n')
    srv = Palisade(ctx, args.bin.resolve(), name="osv", extra_env={"PALISADE_LOG": "info"})
    env = {**os.environ, "PALISADE_CONFIG": str(config), "PALISADE_LOG": "warn"}
    try:
        srv.init()
        timed_upload(srv, hosted)
        server_log = run_dir / "osv.log"

        log("1. first sync of the whole feed (CLI)")
        first = sync(srv, env)
        log(f"   {first:.2f} s ({args.records / first:.0f} records/s)")

        log("2. the running server enforces it: time from the sync's end until its reload")
        t = time.monotonic()
        while f"blocking records loaded records={args.records}" not in server_log.read_text():
            if time.monotonic() - t > 120:
                raise SystemExit("the server did not reload the records in 120 s")
            time.sleep(0.02)
        reload_s = time.monotonic() - t
        log(f"   {reload_s:.2f} s")
        page = urllib.request.Request(f"http://127.0.0.1:{srv.port}/simple/{hosted.name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        with urllib.request.urlopen(page) as r:
            files = json.load(r)["files"]
        assert files == [], f"{hosted.name} is still listed: {files}"

        log("3. steady state")
        same = sync(srv, env)
        log(f"   nothing changed: {same:.2f} s")
        write_feed(folder, args.records, (hosted.name, hosted.version), range(1, 11), generation=1)
        ten = sync(srv, env)
        log(f"   10 records changed: {ten:.2f} s")

        log(f"4. uploads, one at a time, all through a sync that changes all {args.records} records")
        half = 21
        idle = [timed_upload(srv, w) for w in wheels[1:half]]
        write_feed(folder, args.records, (hosted.name, hosted.version), range(1, args.records), generation=2)
        during: list[float] = []
        done = threading.Event()

        def run_sync():
            try:
                sync(srv, env)
            finally:
                done.set()

        th = threading.Thread(target=run_sync)
        th.start()
        time.sleep(0.2)
        for w in wheels[half:]:
            if done.is_set():
                break
            during.append(timed_upload(srv, w))
        th.join()
        if not done.is_set() or len(during) == len(wheels) - half:
            log("   (the wheels ran out before the sync ended: raise --uploads)")
        ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
        log(f"   upload latency idle: median {ms(idle):.0f} ms, max {max(idle) * 1000:.0f} ms ({len(idle)} uploads)")
        if during:
            log(f"   upload latency during the sync: median {ms(during):.0f} ms, max {max(during) * 1000:.0f} ms ({len(during)} uploads)")
        results = {
            "records": args.records,
            "first_sync_s": round(first, 2),
            "reload_after_sync_s": round(reload_s, 2),
            "unchanged_sync_s": round(same, 2),
            "ten_changed_sync_s": round(ten, 2),
            "upload_idle_median_ms": round(ms(idle)),
            "upload_during_sync_median_ms": round(ms(during)) if during else None,
            "upload_during_sync_max_ms": round(max(during) * 1000) if during else None,
        }
        (work / "results.json").write_text(json.dumps(results, indent=2))
        log("summary: " + json.dumps(results))
    finally:
        srv.stop()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
