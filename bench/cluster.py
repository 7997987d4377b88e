#!/usr/bin/env python3
"""Palisade's cluster layout against its embedded one, in one run (issue 14).

    python3 bench/cluster.py --s3-endpoint http://127.0.0.1:5999
    python3 bench/cluster.py --s3-endpoint ... --projects 2000 --duration 6
    python3 bench/cluster.py --smoke --s3-endpoint ...   # tiny sizes: does it still run?

Layouts: *embedded* is one node on SQLite and a folder (the default set-up); *cluster* is two
nodes on one PostgreSQL database and one S3-compatible bucket. For each, the same wheels are
uploaded over HTTP (8 concurrent, split evenly over the nodes), in blocks, so that the rate can be
watched as the repository grows; then a project page is requested with wrk (or the Python load
generator) on each node alone and on both at once. Prints uploads/s, page requests/s per node,
and the cluster's ratios to the embedded layout.

PostgreSQL: `--database-server` (default: $PALISADE_TEST_DATABASE_URL, else
postgres://postgres@127.0.0.1:5432/postgres); a fresh database is created for the run and dropped
after. S3: `--s3-endpoint` (default: $PALISADE_TEST_S3_ENDPOINT), any S3-compatible server that
accepts the credentials testing/testing (moto in server mode: `moto_server -p 5999`); a fresh
bucket is created. On this machine the only S3 server is moto, one Python process: it bounds the
cluster's upload figure, not Palisade (see docs/operations.md).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import uploader  # noqa: E402
from procs import JSON_ACCEPT, HOST, run_pyload, run_wrk  # noqa: E402
from servers import Palisade  # noqa: E402
from wheels import ensure_wheels, project_name  # noqa: E402

ROOT = BENCH.parent
LUA = BENCH / "lua" / "report.lua"


def log(msg: str) -> None:
    print(msg, flush=True)


def find_palisade() -> Path:
    env = os.environ.get("PALISADE_BIN")
    for p in ([Path(env)] if env else []) + [ROOT / "target" / "release" / "palisade", ROOT / "target" / "debug" / "palisade"]:
        if p.is_file():
            return p
    sys.exit("no palisade binary: build it (cargo build --release) or set PALISADE_BIN")


def create_database(server: str) -> tuple[str, str]:
    name = f"palisade_bench_{secrets.token_hex(6)}"
    subprocess.run(["psql", server, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True, timeout=60)
    base = server.split("?", 1)[0].rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def drop_database(server: str, name: str) -> None:
    subprocess.run(["psql", server, "-q", "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True, timeout=60)


def create_bucket(endpoint: str) -> str:
    name = f"palisade-bench-{secrets.token_hex(5)}"
    req = urllib.request.Request(f"{endpoint.rstrip('/')}/{name}", method="PUT")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200, f"creating bucket {name}: {r.status}"
    return name


def pg_counters(server: str, name: str) -> dict[str, int]:
    """PostgreSQL's counters for database `name`: committed transactions, rows written."""
    out = subprocess.run(
        ["psql", server, "-qAt", "-c",
         f"SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = '{name}'"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()
    commits, rows = (int(x) for x in out.split("|"))
    return {"commits": commits, "rows": rows}


def upload_blocks(nodes: list[Palisade], wheels, block_projects: int, concurrency: int, deadline_s: float) -> list[dict]:
    """Uploads in blocks of `block_projects` projects, each block's files split evenly over the
    nodes and sent to all of them at once; the rate of each block."""
    by_project: dict[int, list] = {}
    for w in wheels:
        by_project.setdefault(w.index, []).append(w)
    idx = sorted(by_project)
    auth = uploader.basic_auth("__token__", nodes[0].token)
    per_node = max(1, concurrency // len(nodes))
    blocks = []
    for b in range(0, len(idx), block_projects):
        chunk = idx[b : b + block_projects]
        ws = [w for i in chunk for w in by_project[i]]
        shares = [ws[i :: len(nodes)] for i in range(len(nodes))]
        results: list = [None] * len(nodes)

        def run(k: int) -> None:
            results[k] = uploader.upload(nodes[k].upload_url(), shares[k], auth=auth, concurrency=per_node, deadline_s=deadline_s)

        t0 = time.monotonic()
        threads = [threading.Thread(target=run, args=(k,)) for k in range(len(nodes))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        secs = time.monotonic() - t0
        ok = sum(r.ok for r in results)
        failed = sum(r.failed for r in results)
        first_error = next((r.first_error for r in results if r.first_error), "")
        rate = ok / secs if secs else 0.0
        blocks.append({"projects": [chunk[0], chunk[-1]], "files": ok, "failed": failed, "seconds": round(secs, 2), "files_per_s": round(rate, 1)})
        log(f"    projects {chunk[0]:>5}-{chunk[-1]:<5} {ok:>5} files in {secs:6.1f}s = {rate:7.1f} files/s"
            + (f"  FAILED {failed}: {first_error[:200]}" if failed else ""))
        if ok == 0:
            raise RuntimeError(f"uploads fail: {first_error}")
    return blocks


def load(port: int, path: str, connections: int, duration: float, generator: str) -> dict:
    if generator == "wrk":
        r = run_wrk(port, path, connections=connections, duration_s=duration, lua=LUA, accept=JSON_ACCEPT)
    else:
        r = run_pyload(port, path, connections=connections, duration_s=duration, accept=JSON_ACCEPT)
    return r.as_dict()


def pages(nodes: list[Palisade], sample: str, connections: int, duration: float, generator: str) -> dict:
    """Requests/s for one project page: on each node alone, then on all at once."""
    path = f"/simple/{sample}/"
    out: dict = {"alone": [], "together": []}
    for n in nodes:
        r = load(n.port, path, connections, duration, generator)
        out["alone"].append(r)
        log(f"    {n.name:<10} alone    {r['rps']:10.1f} req/s  p50 {r.get('p50_ms') or 0:.2f} ms  p99 {r.get('p99_ms') or 0:.2f} ms")
    if len(nodes) > 1:
        results: list = [None] * len(nodes)

        def run(k: int) -> None:
            results[k] = load(nodes[k].port, path, max(1, connections // len(nodes)), duration, generator)

        threads = [threading.Thread(target=run, args=(k,)) for k in range(len(nodes))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out["together"] = results
        total = sum(r["rps"] for r in results)
        each = " + ".join(f"{r['rps']:.0f}" for r in results)
        log(f"    all nodes at once  {total:10.1f} req/s in total ({each})")
    return out


def run_layout(ctx, binary: Path, layout: str, wheels, args, env: dict[str, str]) -> dict:
    log(f"\n== {layout} layout")
    names = ["embedded"] if layout == "embedded" else [f"{layout}-a", f"{layout}-b"]
    nodes = [Palisade(ctx, binary, name=n, extra_env=env) for n in names]
    for n in nodes:
        if n.data.exists():
            shutil.rmtree(n.data)
    res: dict = {"nodes": len(nodes)}
    try:
        res["startup_s"] = round(nodes[0].init(), 3)
        for n in nodes[1:]:
            n.data.mkdir(parents=True)
            # Every node of one log signs with the same key: the first node made it.
            key = (nodes[0].data / "log-signing.key").read_text().strip()
            n.extra_env = {**n.extra_env, "PALISADE_TRANSPARENCY_KEY": key}
            n.start()
            n.token = nodes[0].token
        log(f"  uploads ({len(wheels)} files, {args.concurrency} concurrent over {len(nodes)} node(s))")
        before = pg_counters(args.database_server, env["PALISADE_DATABASE_URL"].rsplit("/", 1)[-1]) if layout != "embedded" else None
        t0 = time.monotonic()
        res["upload_blocks"] = upload_blocks(nodes, wheels, args.block_projects, args.concurrency, args.upload_deadline)
        secs = time.monotonic() - t0
        ok = sum(b["files"] for b in res["upload_blocks"])
        res["upload_files_per_s"] = round(ok / secs, 1) if secs else 0
        log(f"    total {ok} files in {secs:.1f}s = {res['upload_files_per_s']} files/s")
        if before is not None and ok:
            time.sleep(1.0)  # pg_stat_database is updated by each backend every so often
            after = pg_counters(args.database_server, env["PALISADE_DATABASE_URL"].rsplit("/", 1)[-1])
            res["per_upload"] = {k: round((after[k] - before[k]) / ok, 1) for k in before}
            log(f"    PostgreSQL per upload: {res['per_upload']['commits']} committed transactions (single reads included), "
                f"{res['per_upload']['rows']} rows written (both nodes, all background work included)")
        time.sleep(1.0)  # the other nodes' journal watchers catch up
        log(f"  project page /simple/{args.sample}/ (JSON), {args.connections} connections, {args.duration:.0f} s")
        res["pages"] = pages(nodes, args.sample, args.connections, args.duration, ctx.generator)
    finally:
        for n in nodes:
            n.stop()
    return res


def report(results: dict) -> str:
    e, c = results["embedded"], results["cluster"]
    lines = ["", "== Cluster (2 nodes, PostgreSQL + S3) vs embedded (1 node, SQLite + folder)"]

    def row(label, ev, cv, unit):
        ratio = f"{cv / ev:.2f}" if ev else "-"
        lines.append(f"  {label:<42} {ev:>10.1f} {cv:>10.1f} {unit:<8} ratio {ratio}")

    lines.append(f"  {'':<42} {'embedded':>10} {'cluster':>10}")
    row("uploads, whole run", e["upload_files_per_s"], c["upload_files_per_s"], "files/s")
    eb, cb = e["upload_blocks"], c["upload_blocks"]
    row("uploads, first block", eb[0]["files_per_s"], cb[0]["files_per_s"], "files/s")
    row("uploads, last block", eb[-1]["files_per_s"], cb[-1]["files_per_s"], "files/s")
    e_page = e["pages"]["alone"][0]["rps"]
    for k, r in enumerate(c["pages"]["alone"]):
        row(f"project page, node {'ab'[k]} alone", e_page, r["rps"], "req/s")
    together = sum(r["rps"] for r in c["pages"]["together"])
    row("project page, both nodes at once (total)", e_page, together, "req/s")
    f = results.get("cluster_folder")
    if f:
        row("uploads, 2 nodes on PostgreSQL + a shared folder", e["upload_files_per_s"], f["upload_files_per_s"], "files/s")
    if "per_upload" in c:
        lines.append(f"  per upload on PostgreSQL: {c['per_upload']['commits']} committed transactions (single reads included), "
                     f"{c['per_upload']['rows']} rows written")
    lines.append(f"  S3 server: {results['s3_endpoint']} (moto is one Python process: it bounds the cluster's uploads)")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--projects", type=int, default=1000, help="projects to upload (default 1000; --smoke 20)")
    ap.add_argument("--block-projects", type=int, default=None, help="projects per timed block (default projects/4)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per page run (default 5; --smoke 1)")
    ap.add_argument("--upload-deadline", type=float, default=600.0)
    ap.add_argument("--database-server", default=os.environ.get("PALISADE_TEST_DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--s3-endpoint", default=os.environ.get("PALISADE_TEST_S3_ENDPOINT"))
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds")
    ap.add_argument("--with-folder", action="store_true",
                    help="also two nodes on PostgreSQL with a shared folder instead of S3 (what bounds the cluster's uploads)")
    ap.add_argument("--work", default=str(BENCH / "out" / "cluster"))
    ap.add_argument("--out", default=None, help="results JSON (default WORK/results.json)")
    args = ap.parse_args()
    if not args.s3_endpoint:
        sys.exit("--s3-endpoint (or PALISADE_TEST_S3_ENDPOINT) is needed: an S3-compatible server, such as `moto_server -p 5999`")
    if args.smoke:
        args.projects, args.duration, args.connections = 20, 1.0, 4
    args.block_projects = args.block_projects or max(1, args.projects // 4)
    args.sample = project_name(max(1, args.projects // 2))
    work = Path(args.work)
    run_dir = work / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    binary = find_palisade()
    generator = "wrk" if shutil.which("wrk") else "python"
    ctx = SimpleNamespace(run_dir=run_dir, log=log, generator=generator)
    wheels = ensure_wheels(work / "wheels", args.projects, log=log)
    wheels = [w for w in wheels if w.index <= args.projects]
    log(f"palisade {binary}; {len(wheels)} wheels of {args.projects} projects; load generator: {generator}")

    results: dict = {"projects": args.projects, "files": len(wheels), "s3_endpoint": args.s3_endpoint, "generator": generator}
    results["embedded"] = run_layout(ctx, binary, "embedded", wheels, args, {"PALISADE_LOG": "warn"})
    if args.with_folder:
        # The same two nodes with the bytes in a folder both reach (a local disk here; NFS
        # between machines): what the cluster does when the object store is not the bound.
        folder_db, folder_url = create_database(args.database_server)
        shared = run_dir / "shared-files"
        shutil.rmtree(shared, ignore_errors=True)
        shared.mkdir(parents=True)
        try:
            env = {"PALISADE_LOG": "warn", "PALISADE_DATABASE_URL": folder_url, "PALISADE_STORAGE_URL": f"file://{shared}"}
            results["cluster_folder"] = run_layout(ctx, binary, "folder", wheels, args, env)
        finally:
            drop_database(args.database_server, folder_db)
    db_name, db_url = create_database(args.database_server)
    try:
        bucket = create_bucket(args.s3_endpoint)
        env = {
            "PALISADE_LOG": "warn",
            "PALISADE_DATABASE_URL": db_url,
            "PALISADE_STORAGE_URL": f"s3://{bucket}/palisade",
            "AWS_ENDPOINT_URL": args.s3_endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ALLOW_HTTP": "true",
        }
        results["cluster"] = run_layout(ctx, binary, "cluster", wheels, args, env)
    finally:
        drop_database(args.database_server, db_name)
    text = report(results)
    print(text)
    out = Path(args.out) if args.out else work / "results.json"
    out.write_text(json.dumps(results, indent=2))
    log(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
