#!/usr/bin/env python3
"""Palisade benchmark harness: Palisade vs pypiserver vs devpi-server, with
nginx serving Palisade's own pages as static files as the ceiling.

    python3 bench/run.py            # full run: 1,000 then 10,000 projects
    python3 bench/run.py --quick    # 1,000 projects, shorter wrk runs
    python3 bench/run.py --servers palisade,nginx
    python3 bench/run.py --smoke    # tiny sizes, Palisade alone, a few seconds: does it still run?
    python3 bench/run.py --cluster --s3-endpoint URL   # two nodes on PostgreSQL + S3 vs embedded (bench/cluster.py)

Runs with the system python3 (stdlib only); pypiserver, devpi-server and
twine live in bench/.venv, created on first use from bench/requirements.txt.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import uploader  # noqa: E402
from procs import JSON_ACCEPT, HOST, http_get, idle_busy_pct, run_pyload, run_wrk, wait_quiet  # noqa: E402
from servers import Devpi, Nginx, Palisade, PyPIServer, save_palisade_pages  # noqa: E402
from wheels import ensure_wheels, project_name  # noqa: E402

ROOT = BENCH.parent
VENV = BENCH / ".venv"
OUT = BENCH / "out"
LUA = BENCH / "lua" / "report.lua"
ALL_SERVERS = ["palisade", "nginx", "pypiserver", "devpi"]
# Endpoint keys, in report order.
ENDPOINTS = [
    ("simple_html", "/simple/ (HTML)"),
    ("simple_json", "/simple/ (JSON)"),
    ("project_html", "/simple/<p>/ (HTML)"),
    ("project_json", "/simple/<p>/ (JSON)"),
    ("project_random_html", "random <p> (HTML)"),
    ("file", "file download"),
    ("web_project", "/project/<p>/ (web)"),
]
PAGE_ENDPOINTS = ["simple_html", "simple_json", "project_html", "project_json", "project_random_html"]


class Ctx:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.work)
        self.run_dir = self.out / "run"
        self.venv_bin = VENV / "bin"
        # Uploads are timed per block of projects; a smoke run has too few projects for 1,000
        # but still wants two blocks, the "not slowing" check's first and last.
        self.block_projects = max(1, min(args.scales) // 2) if args.smoke else 1000
        self.busy_sample_s = 0.2 if args.smoke else 1.0
        self.quiet_window_s = 0.5 if args.smoke else 1.0
        self.load_generator = "wrk"
        self.twine: list[str] | None = [str(VENV / "bin" / "twine")]
        self.upload_concurrency = args.upload_concurrency
        self.upload_deadline_s = args.upload_deadline
        self.peer_upload_projects = args.peer_upload_projects
        self.devpi_import_timeout_s = 1800
        self.nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
        self.t0 = time.monotonic()
        self.lines: list[str] = []

    def log(self, msg: str) -> None:
        el = time.monotonic() - self.t0
        print(f"[{int(el // 60):02d}:{el % 60:04.1f}] {msg}", flush=True)


# ---------------------------------------------------------------- set-up


def ensure_tools(need_nginx: bool, log) -> None:
    missing = [p for p, need in (("wrk", True), ("nginx", need_nginx)) if need and not shutil.which(p) and not Path(f"/usr/sbin/{p}").exists()]
    if not missing:
        return
    pkgs = ["wrk" if m == "wrk" else "nginx-light" for m in missing]
    if os.geteuid() != 0:
        sys.exit(f"missing {missing}: run  sudo apt-get install {' '.join(pkgs)}")
    log(f"installing Debian packages {pkgs} (apt-get)")
    subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", *pkgs], check=True, timeout=900,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def ensure_venv(log) -> None:
    req = BENCH / "requirements.txt"
    want = hashlib.sha256(req.read_bytes()).hexdigest()
    stamp = VENV / ".requirements.sha256"
    if (VENV / "bin" / "python").exists() and stamp.exists() and stamp.read_text() == want:
        return
    log(f"creating {VENV} and installing {req.name} (pypiserver, devpi-server, twine)")
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "-r", str(req)],
                   check=True, timeout=1800)
    stamp.write_text(want)


def smoke_tools(ctx: Ctx, notes: list[str]) -> None:
    """A smoke run installs and downloads nothing: without wrk its figures come from a Python
    load loop, peers that are not installed are left out, and twine is this interpreter's (the
    e2e venv has one) or bench/.venv's if that exists, else skipped. Each choice is printed
    and noted in the results."""
    a = ctx.args
    said = []
    if not shutil.which("wrk"):
        ctx.load_generator = "python"
        said.append("wrk not found: requests/s and latencies come from a Python load loop "
                    "(procs.run_pyload), which shows that endpoints answer, not how fast")
    if "nginx" in a.servers and not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        a.servers.remove("nginx")
        said.append("nginx not found: left out of this smoke run")
    for peer, exe in (("pypiserver", "pypi-server"), ("devpi", "devpi-server")):
        if peer in a.servers and not (VENV / "bin" / exe).exists():
            a.servers.remove(peer)
            said.append(f"{peer} not installed in {VENV}: left out of this smoke run (it downloads nothing)")
    if importlib.util.find_spec("twine") is not None:
        ctx.twine = [sys.executable, "-m", "twine"]
    elif not (VENV / "bin" / "twine").exists():
        ctx.twine = None
        if not a.no_twine:
            a.no_twine = True
            said.append("twine not found (neither in this interpreter nor in bench/.venv): the twine upload is skipped")
    for n in said:
        ctx.log("smoke: " + n)
    notes.extend(said)


def find_palisade() -> Path | None:
    env = os.environ.get("PALISADE_BIN")
    if env:
        return Path(env)
    for p in (ROOT / "target/release/palisade", ROOT / "target/debug/palisade"):
        if p.exists():
            return p
    return None


def tool_versions(servers: list[str], palisade_bin: Path | None) -> dict:
    v: dict = {}

    def out(argv):
        try:
            cp = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return (cp.stdout + cp.stderr).strip().splitlines()[0] if (cp.stdout + cp.stderr).strip() else ""
        except Exception as e:  # noqa: BLE001
            return f"? ({e})"

    v["wrk"] = out(["wrk", "-v"])
    if "nginx" in servers:
        v["nginx"] = out(["nginx", "-v"])
    if palisade_bin:
        v["palisade"] = f"{palisade_bin} ({out([str(palisade_bin), '--version'])})"
    if (VENV / "bin/python").exists():
        code = ("import importlib.metadata as m\n"
                "for p in ('pypiserver','devpi-server','twine','waitress'):\n"
                "    try: print(p, m.version(p))\n"
                "    except Exception: pass\n")
        cp = subprocess.run([str(VENV / "bin/python"), "-c", code], capture_output=True, text=True, timeout=60)
        for line in cp.stdout.splitlines():
            k, _, ver = line.partition(" ")
            v[k] = ver
    return v


# ---------------------------------------------------------------- one server at one scale


def check_endpoint(srv, key: str, path: str, accept: str | None, sample: str, sample_files: list, scale: int) -> str:
    """Return '' if the endpoint answers as expected, else why not."""
    st, hdr, body = http_get(srv.port, path, {"Accept": accept} if accept else None, timeout=120)
    if st != 200:
        return f"HTTP {st}"
    if key == "file":
        return "" if len(body) == sample_files[0].size else f"got {len(body)} bytes, want {sample_files[0].size}"
    if accept:
        if "json" not in hdr.get("content-type", ""):
            return f"content-type {hdr.get('content-type')!r} for a JSON request"
        d = json.loads(body)
        if key == "simple_json":
            n = len(d.get("projects", []))
            if n < scale:
                return f"JSON /simple/ lists {n} projects, expected {scale}"
        else:
            names = {f["filename"] for f in d.get("files", [])}
            if not {w.filename for w in sample_files} <= names:
                return f"JSON page lacks files: {sorted(names)}"
        return ""
    text = body.decode(errors="replace")
    if key == "simple_html":
        return "" if sample in text else f"{sample} not listed"
    if key == "project_html":
        missing = [w.filename for w in sample_files if w.filename not in text]
        return f"missing {missing}" if missing else ""
    if key == "web_project":
        # The page of the latest release: it lists that release's files only.
        newest = max((w.version for w in sample_files), key=lambda v: tuple(int(x) for x in v.split(".")))
        want = [w.filename for w in sample_files if w.version == newest]
        missing = [f for f in want if f not in text]
        return f"missing {missing} (of release {newest})" if missing else ""
    return ""


def bench_server(ctx: Ctx, srv, scale: int, prev: int, wheels, sample: str, res: dict, pal_pages_out: dict) -> None:
    a = ctx.args
    log = ctx.log
    busy = idle_busy_pct(ctx.busy_sample_s)
    res["machine_busy_pct_before"] = round(busy, 1)
    if busy > 15:
        log(f"WARNING: the machine is {busy:.0f}% busy with other work before {srv.name}'s phase: figures will be noisy")
    log(f"{srv.name} @ {scale:,} projects: loading")
    info = srv.load_to(scale, wheels, prev)
    res["load"] = info
    for k in ("startup_s", "startup_empty_s"):
        if k in info:
            log(f"    start-up ({k}): {info[k] * 1000:.0f} ms")
    # Let background work left by loading (indexing, devpi's events, ...)
    # finish before measuring, and report how long it took.
    settle = wait_quiet(srv.proc.pid, max_s=a.settle_max, window_s=ctx.quiet_window_s)
    res["settle_s"] = round(settle, 1)
    if settle >= 0.5:
        log(f"    busy for {settle:.1f}s after loading (waited for < 5% CPU before measuring)")
    res["rss_after_load"] = srv.rss()
    log(f"    RSS after load: {res['rss_after_load']['tree_kib'] / 1024:.1f} MiB")

    sample_files = sorted([w for w in wheels if w.name == sample], key=lambda w: w.filename)
    paths_file = ctx.run_dir / f"paths-{srv.name}-{scale}.txt"
    names = getattr(srv, "project_names", None) or [project_name(i) for i in range(1, scale + 1)]
    paths_file.write_text("".join(srv.project_path(n) + "\n" for n in names))

    eps = []
    for key, _label in ENDPOINTS:
        accept = JSON_ACCEPT if key.endswith("_json") else None
        if accept and not srv.supports_json:
            continue
        if key == "web_project" and not srv.supports_web:
            continue
        if key == "web_project":
            path = f"/project/{sample}/"
        elif key.startswith("simple_"):
            path = srv.simple_path
        elif key == "file":
            path = srv.file_path(sample)
            if path is None:
                res.setdefault("checks", {})[key] = "no file URL found"
                continue
        elif key == "project_random_html":
            path = srv.project_path(names[len(names) // 3])
        else:
            path = srv.project_path(sample)
        eps.append((key, path, accept))

    res["wrk"] = {}
    res["paths"] = {}
    dur = a.slow_duration if srv.name == "pypiserver" else a.duration
    for key, path, accept in eps:
        why = check_endpoint(srv, key, path, accept, sample, sample_files, scale)
        res.setdefault("checks", {})[key] = why or "ok"
        res["paths"][key] = path
        if why:
            log(f"    CHECK FAILED {key} {path}: {why} -- not measured")
            continue
        for c in a.connections:
            pf = paths_file if key == "project_random_html" else None
            if ctx.load_generator == "wrk":
                r = run_wrk(srv.port, path, connections=c, duration_s=dur, lua=LUA, accept=accept,
                            paths_file=pf, threads=a.wrk_threads, timeout_s=a.wrk_timeout)
            else:
                r = run_pyload(srv.port, path, connections=c, duration_s=dur, accept=accept,
                               paths_file=pf, timeout_s=a.wrk_timeout)
            res["wrk"].setdefault(key, {})[str(c)] = r.as_dict()
            errs = f"  errors {r.errors}" if r.errors else ""
            if r.ok:
                p50 = "-" if r.p50_ms is None else f"{r.p50_ms:.2f}"
                p99 = "-" if r.p99_ms is None else f"{r.p99_ms:.2f}"
                log(f"    {key:20s} c={c:<3d} {r.rps:10.1f} req/s  p50 {p50} ms  p99 {p99} ms{errs}")
            else:
                log(f"    {key:20s} c={c:<3d} wrk failed: {r.error}")
    res["rss_after_wrk"] = srv.rss()
    log(f"    RSS after wrk: {res['rss_after_wrk']['tree_kib'] / 1024:.1f} MiB")

    if srv.name == "palisade":
        if "nginx" in a.servers:
            pal_pages_out.update(save_palisade_pages(srv, scale, sample, log))
        srv.stop()
        times = []
        for _ in range(a.startup_repeats):
            times.append(srv.start())
            srv.stop()
        times.sort()
        res["startup_s"] = times[len(times) // 2]
        res["startup_all_s"] = [round(t, 4) for t in times]
        log(f"    start-up with {scale:,} projects (median of {len(times)}): {res['startup_s'] * 1000:.1f} ms "
            f"(all: {', '.join(f'{t * 1000:.1f}' for t in times)} ms)")
    else:
        res["startup_s"] = info.get("startup_s")
        if srv.name == "nginx":
            # Ceiling of the upload client itself: nginx reads and discards each form.
            up = [w for w in wheels if w.index <= min(scale, 1000)]
            r = uploader.upload(f"http://{HOST}:{srv.port}/upload-sink", up, concurrency=ctx.upload_concurrency,
                                deadline_s=60)
            res["upload_client_ceiling"] = r.as_dict()
            log(f"    upload client ceiling (nginx discarding {len(up)} forms): {r.rate:.0f} files/s")
        srv.stop()


def run_twine(ctx: Ctx, srv, wheels: list, log) -> dict:
    user, pw = srv.upload_auth()
    files = [str(w.path) for w in wheels]
    env = {**os.environ, "TWINE_NON_INTERACTIVE": "1", "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    argv = [*ctx.twine, "upload", "--repository-url", srv.upload_url(), "-u", user, "-p", pw,
            "--non-interactive", "--disable-progress-bar", *files]
    t0 = time.monotonic()
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=ctx.args.upload_deadline, env=env)
        rc, err = cp.returncode, (cp.stdout + cp.stderr)[-600:]
    except subprocess.TimeoutExpired:
        rc, err = "timeout", ""
    secs = time.monotonic() - t0
    d = {"files": len(files), "seconds": round(secs, 2), "rc": rc,
         "files_per_s": round(len(files) / secs, 2) if rc == 0 else None}
    if rc != 0:
        d["error"] = err
    log(f"    twine upload of {len(files)} files: " + (f"{secs:.1f}s = {len(files) / secs:.1f} files/s" if rc == 0 else f"FAILED rc={rc}: {err[-300:]}"))
    return d


# ---------------------------------------------------------------- report


def fmt_num(x, nd=0):
    if x is None:
        return "n/a"
    return f"{x:,.{nd}f}"


def wrk_cell(results_scale: dict, server: str, key: str, c: str):
    s = results_scale.get(server)
    if s is None or "error" in s and "wrk" not in s:
        return None
    return s.get("wrk", {}).get(key, {}).get(c)


def render(results: dict) -> str:
    lines: list[str] = []
    w = lines.append
    servers = results["meta"]["servers"]
    conns = [str(c) for c in results["meta"]["connections"]]
    colw = 18
    for note in results["meta"].get("notes", []):
        w(f"note: {note}")
    for scale, rs in results["scales"].items():
        w("")
        w(f"=== {int(scale):,} projects ({int(scale) * 3:,} files) " + "=" * 40)
        head = f"{'endpoint':22s}{'conns':>6s} " + "".join(f"{s:>{colw}s}" for s in servers)
        w("requests/s (successful responses; * = wrk saw errors or time-outs, or no answer at all: see results.json)")
        w(head)
        for key, label in ENDPOINTS:
            for c in conns:
                cells = []
                for s in servers:
                    d = wrk_cell(rs, s, key, c)
                    if d is None:
                        cells.append("n/a")
                    elif not d["ok"]:
                        cells.append("failed")
                    else:
                        flag = "*" if d["errors"] or d["requests"] == 0 else ""
                        cells.append(fmt_num(d["rps"], 0 if d["rps"] >= 100 else 1) + flag)
                w(f"{label:22s}{c:>6s} " + "".join(f"{x:>{colw}s}" for x in cells))
        w("")
        w(f"latency p50 / p99, ms (>{results['meta']['wrk_timeout_s'] * 1000:.0f}: more than 1% (p99) or half (p50) of the responses came after wrk's time-out)")
        w(head)
        for key, label in ENDPOINTS:
            for c in conns:
                cells = []
                for s in servers:
                    d = wrk_cell(rs, s, key, c)
                    tmo = (d or {}).get("errors", {}).get("timeout", 0)
                    late = d is not None and d["ok"] and d["requests"] and tmo / d["requests"] >= 0.01
                    limit = f">{results['meta']['wrk_timeout_s'] * 1000:.0f}"
                    if d is None or not d["ok"]:
                        cells.append("n/a")
                    elif d["p50_ms"] is None:
                        cells.append(f"{limit} / {limit}" if tmo else "n/a")
                    else:
                        p50 = limit if late and tmo / d["requests"] >= 0.5 else f"{d['p50_ms']:.2f}"
                        cells.append(f"{p50} / {limit if late else format(d['p99_ms'], '.2f')}")
                w(f"{label:22s}{c:>6s} " + "".join(f"{x:>{colw}s}" for x in cells))
        w("")
        w(f"bytes per response (c={conns[0]})")
        for key, label in ENDPOINTS:
            cells = []
            for s in servers:
                d = wrk_cell(rs, s, key, conns[0])
                cells.append(fmt_num(d["bytes_per_req"]) if d and d["ok"] and d["requests"] else "n/a")
            w(f"{label:29s}" + "".join(f"{x:>{colw}s}" for x in cells))
        w("")
        w(f"{'other':29s}" + "".join(f"{s:>{colw}s}" for s in servers))

        def row(label, fn):
            cells = []
            for s in servers:
                d = rs.get(s)
                try:
                    cells.append(fn(d) if d and "error" not in d else ("error" if d else "n/a"))
                except (KeyError, TypeError):
                    cells.append("n/a")
            w(f"{label:29s}" + "".join(f"{x:>{colw}s}" for x in cells))

        def upl(d):
            ld = d["load"]
            if "upload_blocks" in ld:
                return fmt_num(ld["upload_files_per_s"], 1)
            if "upload_sample" in ld:
                return fmt_num(ld["upload_files_per_s"], 1) + "†"
            return "n/a"

        row("uploads/s (8 conc.)", upl)
        row("  first 1,000 projects", lambda d: fmt_num(d["load"]["upload_blocks"][0]["files_per_s"], 1) if d["load"].get("upload_blocks") and d["load"]["upload_blocks"][0]["projects"][0] == 1 else "n/a")
        row("  last 1,000 projects", lambda d: fmt_num(d["load"]["upload_blocks"][-1]["files_per_s"], 1) if d["load"].get("upload_blocks") and d["load"]["upload_blocks"][-1]["projects"][1] == int(scale) else "n/a")
        row("start-up, ms", lambda d: fmt_num(d["startup_s"] * 1000, 1) if d.get("startup_s") is not None else "n/a")
        row("busy after load, s", lambda d: fmt_num(d.get("settle_s"), 1))
        row("machine busy before, %", lambda d: fmt_num(d.get("machine_busy_pct_before"), 0))
        row("RSS after load, MiB", lambda d: fmt_num(d["rss_after_load"]["tree_kib"] / 1024, 1))
        row("RSS after wrk, MiB", lambda d: fmt_num(d["rss_after_wrk"]["tree_kib"] / 1024, 1))
        for s in servers:
            d = rs.get(s)
            if d and "error" in d:
                w(f"  {s}: ERROR {d['error'][:300]}")
        w("  † pypiserver/devpi: rate of an HTTP upload sample (last "
          f"{results['meta']['peer_upload_projects']} projects) on top of a bulk load; see 'loading' below")
        w("loading:")
        for s in servers:
            d = rs.get(s)
            if d and "load" in d:
                ld = d["load"]
                extra = ""
                if "import_s" in ld:
                    extra = f" (devpi-import {ld['import_files']:,} files in {ld['import_s']:.1f}s)"
                w(f"  {s:11s} {ld.get('method', '')}{extra}")
        if "nginx" in rs and "upload_client_ceiling" in rs["nginx"]:
            w(f"  upload client ceiling (nginx discards the forms): {rs['nginx']['upload_client_ceiling']['files_per_s']:,.0f} files/s")

    # ratios
    w("")
    w("=== ratios (palisade / other; requests/s higher is better) " + "=" * 20)
    others = [s for s in ("devpi", "pypiserver", "nginx") if s in servers]
    if "palisade" not in servers:
        w("  palisade not in this run")
    else:
        for scale, rs in results["scales"].items():
            w(f"-- {int(scale):,} projects")
            w(f"{'endpoint':22s}{'conns':>6s} " + "".join(f"{'vs ' + s:>{colw}s}" for s in others))
            for key, label in ENDPOINTS:
                for c in conns:
                    p = wrk_cell(rs, "palisade", key, c)
                    cells = []
                    for o in others:
                        d = wrk_cell(rs, o, key, c)
                        if not p or not d or not p["ok"] or not d["ok"]:
                            cells.append("n/a")
                        elif d["rps"] == 0:
                            cells.append("inf" if p["rps"] > 0 else "n/a")
                        else:
                            cells.append(f"{p['rps'] / d['rps']:,.2f}x")
                    w(f"{label:22s}{c:>6s} " + "".join(f"{x:>{colw}s}" for x in cells))
            pr = rs.get("palisade", {})

            def ratio(fn, o):
                try:
                    a, b = fn(pr), fn(rs[o])
                    return f"{a / b:,.3g}x" if a and b else "n/a"
                except (KeyError, TypeError, ZeroDivisionError):
                    return "n/a"

            for label, fn in (
                ("uploads/s", lambda d: d["load"]["upload_files_per_s"]),
                ("start-up time", lambda d: d["startup_s"]),
                ("RSS after wrk", lambda d: d["rss_after_wrk"]["tree_kib"]),
            ):
                w(f"{label:29s}" + "".join(f"{ratio(fn, o):>{colw}s}" for o in others))
    if results.get("twine"):
        w("")
        w("=== twine upload (one `twine upload` of many files, sequential) " + "=" * 10)
        for s, d in results["twine"].items():
            w(f"  {s:11s} " + (f"{d['files']} files in {d['seconds']:.1f}s = {d['files_per_s']:.1f} files/s" if d.get("files_per_s") else f"failed: {str(d.get('error', ''))[:200]}"))
    w("")
    w("=== targets " + "=" * 60)
    for t in results.get("targets", []):
        w(f"  [{t['status']:4s}] {t['target']}: {t['detail']}")
    return "\n".join(lines)


def evaluate_targets(results: dict) -> list[dict]:
    out = []
    sc = results["scales"]

    def add(target, ok, detail):
        status = "n/a" if ok is None else "info" if ok == "info" else ("PASS" if ok else "FAIL")
        out.append({"target": target, "status": status, "detail": detail})

    for scale, rs in sc.items():
        pal = rs.get("palisade")
        tag = f"@{int(scale):,}"
        if not pal or "wrk" not in pal:
            add(f"palisade measured {tag}", None, "palisade not measured")
            continue
        for other, need, label in (("devpi", 30.0, ">= 30x devpi requests/s"), ("nginx", 0.5, ">= 0.5x nginx requests/s")):
            worst, detail, ok = None, [], None
            if other in rs and "wrk" in rs[other]:
                for key in PAGE_ENDPOINTS:
                    for c, p in pal["wrk"].get(key, {}).items():
                        o = rs[other]["wrk"].get(key, {}).get(c)
                        if not o or not o["ok"] or not p["ok"] or o["rps"] == 0:
                            continue
                        r = p["rps"] / o["rps"]
                        if worst is None or r < worst[0]:
                            worst = (r, key, c)
                if worst:
                    ok = worst[0] >= need
                    detail = [f"worst {worst[0]:,.2f}x on {worst[1]} c={worst[2]}"]
            add(f"pages {label} {tag}", ok, detail[0] if detail else f"{other} not measured")
        # The web interface's project page (rendered once per change and cached) against nginx
        # serving the same bytes as a static file.
        worst = None
        for c, p in pal["wrk"].get("web_project", {}).items():
            o = rs.get("nginx", {}).get("wrk", {}).get("web_project", {}).get(c)
            if o and o["ok"] and p["ok"] and o["rps"]:
                r = p["rps"] / o["rps"]
                if worst is None or r < worst[0]:
                    worst = (r, c)
        add(f"project web page >= 0.5x nginx requests/s {tag}", None if worst is None else worst[0] >= 0.5,
            f"worst {worst[0]:,.2f}x at c={worst[1]}" if worst else "nginx or the web page not measured")

        def p99_at_64(server, key):
            d = rs.get(server, {}).get("wrk", {}).get(key, {}).get("64")
            if not d or not d["ok"]:
                return None
            if d["requests"] and d.get("errors", {}).get("timeout", 0) / d["requests"] >= 0.01:
                return float("inf")
            return d["p99_ms"]

        p99s = [(v, key) for key in PAGE_ENDPOINTS if (v := p99_at_64("palisade", key)) is not None]
        if p99s:
            m = max(p99s)
            ng = p99_at_64("nginx", m[1])
            add(f"pages p99 < 5 ms at 64 conns {tag}", m[0] < 5.0,
                f"worst p99 {m[0]:.2f} ms on {m[1]}" + (f" (nginx on the same page: {ng:.2f} ms)" if ng is not None else ""))
        else:
            add(f"pages p99 < 5 ms at 64 conns {tag}", None, "no 64-connection runs")
        fp = p99_at_64("palisade", "file")
        if fp is not None:
            ng = p99_at_64("nginx", "file")
            add(f"file download p99 at 64 conns {tag}", "info",
                f"{fp:.2f} ms (not a stated target; < 5 ms would match the pages')"
                + (f"; nginx: {ng:.2f} ms" if ng is not None else ""))
        st = pal.get("startup_s")
        add(f"start-up < 100 ms {tag}", None if st is None else st < 0.100, "n/a" if st is None else f"{st * 1000:.1f} ms")
        ld = pal.get("load", {})
        rate = ld.get("upload_files_per_s")
        cl = rs.get("nginx", {}).get("upload_client_ceiling", {}).get("files_per_s")
        add(f"uploads >= 200/s {tag}", None if rate is None else rate >= 200,
            f"{rate} files/s over {ld.get('upload_files')} files" + (f" (client ceiling {cl:,.0f}/s)" if cl else ""))
    # upload rate does not fall: first 1,000 vs last 1,000 projects
    blocks = []
    for rs in sc.values():
        blocks += rs.get("palisade", {}).get("load", {}).get("upload_blocks", [])
    if len(blocks) >= 2:
        f, l = blocks[0], blocks[-1]
        r = l["files_per_s"] / f["files_per_s"] if f["files_per_s"] else 0
        add("uploads do not slow as the repository grows", r >= 0.9,
            f"projects {f['projects'][0]}-{f['projects'][1]}: {f['files_per_s']}/s, "
            f"{l['projects'][0]}-{l['projects'][1]}: {l['files_per_s']}/s (last/first {r:.2f}; pass >= 0.90)")
    else:
        add("uploads do not slow as the repository grows", None, "needs the 10,000-project scale")
    big = max(sc, key=int) if sc else None
    pal = sc.get(big, {}).get("palisade") if big else None
    if pal and "rss_after_wrk" in pal:
        mb = pal["rss_after_wrk"]["tree_kib"] * 1024 / 1e6
        add(f"RSS < 100 MB @{int(big):,}", mb < 100 if int(big) >= 10000 else None,
            f"{mb:.1f} MB after wrk" + ("" if int(big) >= 10000 else " (target is at 10,000 projects)"))
    # same at 1k and 10k
    if len(sc) >= 2 and all("palisade" in rs and "wrk" in rs["palisade"] for rs in sc.values()):
        ks = sorted(sc, key=int)
        a, b = sc[ks[0]]["palisade"]["wrk"], sc[ks[-1]]["palisade"]["wrk"]
        worst = None
        for key in ("project_html", "project_json", "project_random_html", "file"):
            for c in a.get(key, {}):
                if key in b and c in b[key] and a[key][c]["rps"]:
                    r = b[key][c]["rps"] / a[key][c]["rps"]
                    if worst is None or r < worst[0]:
                        worst = (r, key, c)
        if worst:
            ref = ""
            na = sc[ks[0]].get("nginx", {}).get("wrk", {}).get(worst[1], {}).get(worst[2])
            nb = sc[ks[-1]].get("nginx", {}).get("wrk", {}).get(worst[1], {}).get(worst[2])
            if na and nb and na["rps"]:
                ref = f"; nginx's own ratio there, a noise reference: {nb['rps'] / na['rps']:.2f}"
            add(f"project pages as fast at {int(ks[-1]):,} as at {int(ks[0]):,} projects", worst[0] >= 0.8,
                f"worst rps@{int(ks[-1]):,} / rps@{int(ks[0]):,} = {worst[0]:.2f} on {worst[1]} c={worst[2]} "
                f"(pass >= 0.80; /simple/ grows with N so it is left out{ref})")
    return out


# ---------------------------------------------------------------- main


def main() -> int:
    # The cluster layout (two nodes on PostgreSQL and S3 against the embedded layout) has its own
    # harness: `run.py --cluster [its options]` runs bench/cluster.py.
    if len(sys.argv) > 1 and sys.argv[1] == "--cluster":
        import cluster

        sys.argv = [str(BENCH / "cluster.py"), *sys.argv[2:]]
        return cluster.main()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 projects only, 3 s wrk runs")
    ap.add_argument("--smoke", action="store_true",
                    help="does the harness still run? 10 projects, Palisade alone, 0.25 s load runs at 4 "
                         "connections, a Python load loop when wrk is missing; installs and downloads nothing; "
                         "the figures mean nothing")
    ap.add_argument("--servers", default=None, help=f"comma list from {ALL_SERVERS} (default all; --smoke: palisade)")
    ap.add_argument("--scales", default=None, help="comma list of project counts (default 1000,10000; --quick: 1000)")
    ap.add_argument("--duration", type=float, default=None, help="seconds per wrk run (default 6; --quick 3)")
    ap.add_argument("--slow-duration", type=float, default=None, help="seconds per wrk run for pypiserver (default 5; --quick 3)")
    ap.add_argument("--connections", default=None, help="comma list (default 16,64; --smoke: 4)")
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--wrk-timeout", type=float, default=2.0, help="wrk per-request timeout, s")
    ap.add_argument("--upload-concurrency", type=int, default=8)
    ap.add_argument("--upload-deadline", type=float, default=600.0, help="max seconds for one upload batch")
    ap.add_argument("--peer-upload-projects", type=int, default=20,
                    help="projects (x3 files) uploaded over HTTP to pypiserver/devpi at each scale")
    ap.add_argument("--twine-projects", type=int, default=None,
                    help="projects (x3 files) twine uploads to palisade (peers: fewer; default 100, --smoke 2)")
    ap.add_argument("--no-twine", action="store_true")
    ap.add_argument("--settle-max", type=float, default=None,
                    help="max seconds to wait for a server to go idle after loading (default 120; --smoke 10)")
    ap.add_argument("--startup-repeats", type=int, default=None, help="default 3; --smoke 1")
    ap.add_argument("--work", default=str(OUT),
                    help="folder for the wheels, the servers' data and logs (run/) and the results (default bench/out)")
    ap.add_argument("--out", default=None, help="results JSON (default WORK/results.json)")
    ap.add_argument("--keep-data", action="store_true", help="keep the servers' data dirs in WORK/run afterwards")
    ap.add_argument("--report-only", metavar="RESULTS_JSON", help="re-print the report of a saved results.json and exit")
    a = ap.parse_args()
    if a.report_only:
        res = json.loads(Path(a.report_only).read_text())
        res["targets"] = evaluate_targets(res)
        print(render(res))
        return 0
    a.servers = [s.strip() for s in (a.servers or ("palisade" if a.smoke else ",".join(ALL_SERVERS))).split(",") if s.strip()]
    bad = [s for s in a.servers if s not in ALL_SERVERS]
    if bad:
        ap.error(f"unknown servers {bad}")
    a.servers = [s for s in ALL_SERVERS if s in a.servers]  # fixed order: nginx needs palisade's pages
    if a.smoke and a.quick:
        ap.error("--smoke and --quick do not go together")
    a.scales = [int(x) for x in (a.scales or ("10" if a.smoke else "1000" if a.quick else "1000,10000")).split(",")]
    a.duration = a.duration or (0.25 if a.smoke else 3.0 if a.quick else 6.0)
    a.slow_duration = a.slow_duration or (0.25 if a.smoke else 3.0 if a.quick else 5.0)
    a.connections = [int(x) for x in (a.connections or ("4" if a.smoke else "16,64")).split(",")]
    a.twine_projects = a.twine_projects if a.twine_projects is not None else (2 if a.smoke else 100)
    a.settle_max = a.settle_max if a.settle_max is not None else (10.0 if a.smoke else 120.0)
    a.startup_repeats = a.startup_repeats or (1 if a.smoke else 3)
    a.out = a.out or str(Path(a.work) / "results.json")

    ctx = Ctx(a)
    log = ctx.log
    palisade_bin = find_palisade()
    notes = []
    if "palisade" in a.servers:
        if palisade_bin is None or not palisade_bin.exists():
            msg = ("palisade binary not found (build it with `cargo build --release`, or set PALISADE_BIN): "
                   "palisade is NOT measured in this run")
            log("WARNING: " + msg)
            notes.append(msg)
            a.servers.remove("palisade")
            palisade_bin = None
        elif "release" not in str(palisade_bin):
            msg = f"palisade binary {palisade_bin} is not a release build: its figures are not representative"
            log("WARNING: " + msg)
            notes.append(msg)

    if a.smoke:
        notes.append("smoke run: tiny sizes, the figures only show that the harness works")
        smoke_tools(ctx, notes)

    if not a.servers:
        log("error: no server left to measure")
        return 2

    big = max(a.scales)
    n_wrk = sum((6 if s != "pypiserver" else 4) * len(a.connections) * len(a.scales) for s in a.servers)
    est = 15.0  # wheels, venv check
    for sc in a.scales:
        for s in a.servers:
            runs = (6 if s != "pypiserver" else 4) * len(a.connections)
            est += runs * ((a.slow_duration if s == "pypiserver" else a.duration) + 1.2) + 3
        if "palisade" in a.servers:
            est += sc * 3 / 300 / (1 if sc == a.scales[0] else 1.1) + 2  # uploads at ~300/s
        if "pypiserver" in a.servers:
            est += 10 + (sc / 1000) * 8  # upload sample + backlog drains grow with N
        if "devpi" in a.servers:
            est += sc * 3 / 200 + 35  # devpi-import (~200 files/s) + start + upload sample
    if not a.no_twine:
        est += 5 + ("pypiserver" in a.servers) * 5 + ("devpi" in a.servers) * 20
    gen = "wrk" if ctx.load_generator == "wrk" else "Python load"
    log(f"Palisade benchmark: servers {', '.join(a.servers)}; scales {', '.join(f'{s:,}' for s in a.scales)} projects "
        f"x 3 versions; {n_wrk} {gen} runs of {a.duration:g}s (pypiserver {a.slow_duration:g}s) at {a.connections} connections.")
    if not a.smoke:
        log(f"Expected duration: about {est / 60:.0f} minutes on a 2-core machine (full run: ~20 min, --quick: ~5 min). "
            "All load goes to 127.0.0.1.")

    if not a.smoke:
        need_venv = any(s in a.servers for s in ("pypiserver", "devpi")) or not a.no_twine
        ensure_tools("nginx" in a.servers, log)
        if need_venv:
            ensure_venv(log)

    if ctx.run_dir.exists():
        # Deleting a 10,000-project run's data can take minutes on a busy
        # disk: move it aside now, delete it after the measurements.
        old = ctx.out / f"run.old.{time.strftime('%Y%m%d-%H%M%S')}.{os.getpid()}"
        ctx.run_dir.rename(old)
        log(f"moved the previous {ctx.run_dir} to {old.name}; it is deleted at the end of this run")
    ctx.run_dir.mkdir(parents=True)
    t = time.monotonic()
    extra = 0 if a.no_twine else a.twine_projects
    wheels = ensure_wheels(ctx.out / "wheels", big + extra, log=log)
    log(f"{len(wheels):,} wheels ready in {time.monotonic() - t:.1f}s ({ctx.out / 'wheels'})")
    bench_wheels = [w for w in wheels if w.index <= big]

    results: dict = {
        "meta": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "servers": a.servers,
            "scales": a.scales,
            "connections": a.connections,
            "wrk_duration_s": a.duration,
            "wrk_duration_pypiserver_s": a.slow_duration,
            "wrk_threads": a.wrk_threads,
            "wrk_timeout_s": a.wrk_timeout,
            "upload_concurrency": a.upload_concurrency,
            "peer_upload_projects": a.peer_upload_projects,
            "quick": a.quick,
            "smoke": a.smoke,
            "load_generator": ctx.load_generator,
            "machine": {"nproc": os.cpu_count(), "platform": platform.platform(),
                        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")},
            "versions": tool_versions(a.servers, palisade_bin),
            "notes": notes,
        },
        "scales": {},
    }
    objs: dict = {}
    if "palisade" in a.servers:
        # No request log, as nginx runs with `access_log off`: both serve without an access log
        # (one INFO line per request costs Palisade about a fifth of its requests/s here).
        objs["palisade"] = Palisade(ctx, palisade_bin, extra_env={"PALISADE_LOG": "warn"})
    if "nginx" in a.servers:
        objs["nginx"] = Nginx(ctx)
    if "pypiserver" in a.servers:
        objs["pypiserver"] = PyPIServer(ctx)
    if "devpi" in a.servers:
        objs["devpi"] = Devpi(ctx)

    try:
        prev = 0
        for scale in a.scales:
            sample = project_name(500 if scale >= 1000 else max(1, scale // 2))
            rs: dict = {"sample_project": sample}
            results["scales"][str(scale)] = rs
            pal_pages: dict = {}
            for name, srv in objs.items():
                rs[name] = {}
                try:
                    if name == "nginx":
                        srv.build(scale, bench_wheels, pal_pages or None, sample)
                    bench_server(ctx, srv, scale, prev, bench_wheels, sample, rs[name], pal_pages)
                except Exception as e:  # noqa: BLE001
                    log(f"ERROR {name} @ {scale}: {e}")
                    (ctx.run_dir / f"{name}-{scale}-traceback.txt").write_text(traceback.format_exc())
                    rs[name]["error"] = str(e)
                    srv.stop()
            prev = scale
            write_json(results, Path(a.out))

        if not a.no_twine:
            log("twine uploads (sequential, one twine process per server)")
            results["twine"] = {}
            counts = {"palisade": a.twine_projects, "pypiserver": min(20, a.twine_projects), "devpi": min(10, a.twine_projects)}
            for name in ("palisade", "pypiserver", "devpi"):
                srv = objs.get(name)
                if srv is None or "error" in results["scales"][str(big)].get(name, {}):
                    continue
                tw = [w for w in wheels if big < w.index <= big + counts[name]]
                try:
                    srv.start()
                    results["twine"][name] = run_twine(ctx, srv, tw, log)
                except Exception as e:  # noqa: BLE001
                    results["twine"][name] = {"error": str(e)}
                    log(f"ERROR twine {name}: {e}")
                finally:
                    srv.stop()
    finally:
        for srv in objs.values():
            srv.stop()

    results["targets"] = evaluate_targets(results)
    results["meta"]["elapsed_s"] = round(time.monotonic() - ctx.t0, 1)
    write_json(results, Path(a.out))
    text = render(results)
    print(text)
    (Path(a.out).parent / "report.txt").write_text(text + "\n")
    log(f"done in {results['meta']['elapsed_s'] / 60:.1f} min; wrote {a.out} and {Path(a.out).parent / 'report.txt'}")
    if not a.keep_data:
        # The servers' data (~100k files at 10,000 projects) is slow to delete;
        # do it now rather than at the start of the next run. Logs stay.
        log("deleting the servers' data dirs (--keep-data keeps them); results are already written")
        for sub in ("palisade-data", "devpi-server", "devpi-export", "pypiserver-packages", "nginx/www"):
            shutil.rmtree(ctx.run_dir / sub, ignore_errors=True)
    for old in sorted(ctx.out.glob("run.old.*"))[:20]:
        log(f"deleting {old.name}")
        shutil.rmtree(old, ignore_errors=True)
    if a.smoke:
        failed = smoke_failures(results)
        for f in failed:
            log(f"smoke: FAILED {f}")
        return 1 if failed else 0
    return 0


def smoke_failures(results: dict) -> list[str]:
    """What keeps a smoke run from having measured everything it set out to: a server that
    failed, an endpoint whose check failed or that was not measured, failed uploads, twine."""
    out = []
    for scale, rs in results["scales"].items():
        for name in results["meta"]["servers"]:
            d = rs.get(name, {})
            if "error" in d:
                out.append(f"{name} @ {scale}: {d['error'][:300]}")
                continue
            for key, why in d.get("checks", {}).items():
                if why != "ok":
                    out.append(f"{name} @ {scale}: check {key}: {why}")
            for key, by_c in d.get("wrk", {}).items():
                for c, r in by_c.items():
                    if not r["ok"] or r["errors"] or not r["rps"]:
                        out.append(f"{name} @ {scale}: {key} c={c}: {r['error'] or r['errors'] or 'no successful response'}")
            for b in d.get("load", {}).get("upload_blocks", []):
                if b["failed"] or b["timed_out"]:
                    out.append(f"{name} @ {scale}: uploads of projects {b['projects']}: {b['failed']} failed, {b['first_error'][:200]}")
    for name, t in results.get("twine", {}).items():
        if t.get("rc") != 0:
            out.append(f"twine upload to {name}: {t.get('error', '')[-300:]}")
    return out


def write_json(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str))
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
