#!/usr/bin/env python3
"""Provenance and the transparency log, measured (issue 15), in one run:

1. **Upload throughput with the log on and off.** The same wheels uploaded over HTTP (8
   concurrent) to a fresh embedded server, alternating between this build (every upload appends
   a log entry in its transaction; the sequencer signs a checkpoint every second) and a build
   without the log (`--baseline-bin`: Palisade built from the commit before it, 2a929dc). Target:
   within 10% of each other.
2. **Attestation verification time per file**, in the server: the real sdist of
   pypi-attestations 0.0.19 with its two real attestations (tests/fixtures/pep740), uploaded again
   and again with a token, to a project with no trusted publisher: every upload is verified in
   full (trust root, signature, log entry, subject) and refused at the last check, identity, so
   nothing is stored and the next upload is verified again. The server logs
   each check's duration (`attestations checked ... duration_us`). Target: p99 under 5 ms.
3. **Time from an upload to a checkpoint that includes it**: a wheel uploaded, then its proof
   asked for every 10 ms until `/log/proof/<file>` answers 200, with the default
   `transparency.sequence_ms` (1 s). Target: under 5 s.

    cargo build --release                                # this build, target/release/palisade
    python3 bench/provenance.py --baseline-bin /path/to/palisade-without-the-log
    python3 bench/provenance.py --smoke                  # tiny sizes: does it still run?

Stdlib only, like the other harnesses. Figures are medians (and p99) of one run on a shared,
noisy machine: quote them with their ratios, from the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import uploader  # noqa: E402
from servers import Palisade  # noqa: E402
from wheels import ensure_wheels  # noqa: E402

ROOT = BENCH.parent
FIXTURES = ROOT / "tests" / "fixtures" / "pep740"
SDIST = "pypi_attestations-0.0.19.tar.gz"


def log(msg: str) -> None:
    print(msg, flush=True)


def find_palisade() -> Path:
    env = os.environ.get("PALISADE_BIN")
    for p in ([Path(env)] if env else []) + [ROOT / "target" / "release" / "palisade"]:
        if p.is_file():
            return p
    sys.exit("no palisade binary: build it (cargo build --release) or set PALISADE_BIN")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def upload_rate(ctx, binary: Path, name: str, wheels, concurrency: int) -> float:
    srv = Palisade(ctx, binary, name=name, extra_env={"PALISADE_LOG": "warn"})
    try:
        srv.init()
        r = uploader.upload(srv.upload_url(), wheels, auth=uploader.basic_auth("__token__", srv.token), concurrency=concurrency)
        if r.failed:
            raise RuntimeError(f"{name}: {r.failed} uploads failed: {r.first_error}")
        return r.ok / r.seconds
    finally:
        srv.stop()
        shutil.rmtree(srv.data, ignore_errors=True)


def multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = "----palisade-bench-provenance"
    out = bytearray()
    for k, v in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
    out += f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{filename}"\r\n'.encode()
    out += b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def post(url: str, body: bytes, ctype: str, token: str) -> tuple[int, str, dict]:
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": ctype, "Authorization": uploader.basic_auth("__token__", token)})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def attestation_times(ctx, binary: Path, samples: int) -> list[float]:
    srv = Palisade(ctx, binary, name="attest", extra_env={"PALISADE_LOG": "info"})
    try:
        srv.init()
        content = (FIXTURES / SDIST).read_bytes()
        attestations = [json.loads((FIXTURES / f"{SDIST}.{kind}.attestation").read_text()) for kind in ("publish", "slsa")]
        fields = {":action": "file_upload", "protocol_version": "1", "name": "pypi-attestations", "version": "0.0.19",
                  "filetype": "sdist", "pyversion": "source", "sha256_digest": hashlib.sha256(content).hexdigest(),
                  "attestations": json.dumps(attestations)}
        body, ctype = multipart(fields, SDIST, content)
        for _ in range(samples):
            status, text, _ = post(srv.upload_url(), body, ctype, srv.token)
            if status != 400 or "identity:" not in text:
                raise RuntimeError(f"expected a refusal on identity after full verification, got {status}: {text[:300]}")
        time.sleep(0.5)
        logged = (ctx.run_dir / "attest.log").read_text()
        times = [int(m) / 1000.0 for m in re.findall(r"attestations checked.*?duration_us=(\d+)", logged)]
        if len(times) < samples:
            raise RuntimeError(f"the server logged {len(times)} checks for {samples} uploads")
        return times[-samples:]
    finally:
        srv.stop()
        shutil.rmtree(srv.data, ignore_errors=True)


def checkpoint_latency(ctx, binary: Path, wheels, samples: int) -> list[float]:
    srv = Palisade(ctx, binary, name="latency", extra_env={"PALISADE_LOG": "warn"})
    try:
        srv.init()
        out = []
        for w in wheels[:samples]:
            r = uploader.upload(srv.upload_url(), [w], auth=uploader.basic_auth("__token__", srv.token), concurrency=1)
            if r.ok != 1:
                raise RuntimeError(f"upload failed: {r.first_error}")
            done = time.monotonic()
            url = f"http://127.0.0.1:{srv.port}/log/proof/{w.path.name}"
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=10) as resp:
                        if resp.status == 200:
                            break
                except urllib.error.HTTPError as e:
                    if e.code != 404:
                        raise
                if time.monotonic() - done > 30:
                    raise RuntimeError(f"no checkpoint covered {w.path.name} within 30 s")
                time.sleep(0.01)
            out.append(time.monotonic() - done)
            time.sleep(random.uniform(0, 0.3))
        return out
    finally:
        srv.stop()
        shutil.rmtree(srv.data, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-bin", default=os.environ.get("PALISADE_BASELINE_BIN"),
                    help="a Palisade built without the transparency log (the commit before it, 2a929dc)")
    ap.add_argument("--projects", type=int, default=300, help="projects uploaded per throughput round (3 files each)")
    ap.add_argument("--rounds", type=int, default=3, help="throughput rounds per build, alternating")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--attest-samples", type=int, default=300)
    ap.add_argument("--latency-samples", type=int, default=40)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--work", default=str(BENCH / "out" / "provenance"))
    args = ap.parse_args()
    if args.smoke:
        args.projects, args.rounds, args.attest_samples, args.latency_samples = 10, 1, 5, 3
    work = Path(args.work)
    run_dir = work / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    binary = find_palisade()
    ctx = SimpleNamespace(run_dir=run_dir, log=log)
    wheels = [w for w in ensure_wheels(work / "wheels", args.projects, log=log) if w.index <= args.projects]
    results: dict = {"binary": str(binary), "baseline": args.baseline_bin, "files_per_round": len(wheels)}
    log(f"palisade {binary}; baseline {args.baseline_bin or '(none)'}; {len(wheels)} wheels per round")

    log("\n== upload throughput, log on and off")
    builds = [("log-on", binary)] + ([("log-off", Path(args.baseline_bin))] if args.baseline_bin else [])
    rates: dict[str, list[float]] = {name: [] for name, _ in builds}
    for r in range(args.rounds):
        for name, b in builds if r % 2 == 0 else list(reversed(builds)):
            rate = upload_rate(ctx, b, name, wheels, args.concurrency)
            rates[name].append(rate)
            log(f"  round {r + 1} {name:<8} {rate:7.1f} uploads/s")
    results["uploads_per_s"] = {k: round(statistics.median(v), 1) for k, v in rates.items()}
    if "log-off" in rates:
        results["log_on_vs_off"] = round(results["uploads_per_s"]["log-on"] / results["uploads_per_s"]["log-off"], 3)

    log("\n== attestation verification per file (two attestations), in the server")
    times = attestation_times(ctx, binary, args.attest_samples)
    results["attestation_ms"] = {"median": round(statistics.median(times), 3), "p99": round(pct(times, 0.99), 3),
                                 "max": round(max(times), 3), "samples": len(times)}

    log("\n== upload to a checkpoint that includes it (sequence_ms 1000)")
    lat = checkpoint_latency(ctx, binary, wheels, args.latency_samples)
    results["checkpoint_s"] = {"median": round(statistics.median(lat), 3), "p99": round(pct(lat, 0.99), 3),
                               "max": round(max(lat), 3), "samples": len(lat)}

    lines = ["", "provenance and transparency log (issue 15)"]
    for k, v in results["uploads_per_s"].items():
        lines.append(f"  uploads/s, {k:<8} {v:8.1f}   (median of {args.rounds})")
    if "log_on_vs_off" in results:
        ok = results["log_on_vs_off"] >= 0.9
        lines.append(f"  log on / off         {results['log_on_vs_off']:8.3f}   target >= 0.90: {'PASS' if ok else 'FAIL'}")
    a = results["attestation_ms"]
    lines.append(f"  attestations/file ms median {a['median']:.3f}, p99 {a['p99']:.3f}, max {a['max']:.3f}   "
                 f"target p99 < 5 ms: {'PASS' if a['p99'] < 5 else 'FAIL'}")
    c = results["checkpoint_s"]
    lines.append(f"  upload -> checkpoint s median {c['median']:.3f}, p99 {c['p99']:.3f}, max {c['max']:.3f}   "
                 f"target < 5 s: {'PASS' if c['max'] < 5 else 'FAIL'}")
    print("\n".join(lines))
    (work / "results.json").write_text(json.dumps(results, indent=2))
    log(f"\nresults: {work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
