#!/usr/bin/env python3
"""Time the scanner adds to one upload: every benign corpus file scanned on its own, as the server
scans an upload (one file at a time, its members analysed by `--member-threads` threads: the
server uses the machine's cores, at most four).

    python3 bench/upload_scan_time.py                  # benign set in /tmp/scan-eval/benign
    python3 bench/upload_scan_time.py --dir DIR        # any folder of .whl/.tar.gz files

The scan runs inline in the upload request (between receiving the file and publishing it), so its
duration is the time it adds. Three passes:

- cold, one thread and the server's threads: every file analysed afresh (`--cold`), as the first
  upload of new code is;
- release order, the server's threads: each project's sdist and then its wheel, as `twine upload
  dist/*` sends them, with the analyses of Python files reused by content as the server does (a
  wheel repeats its sdist's modules). Also the time per release, sdist and wheel together.

Prints medians and p95 for wheels and sdists, and the share of files under the 50 ms target.
Stdlib only; the files are only read by `palisade scan`, never run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 50.0


def measure(binary: str, files: list[Path], threads: int, cold: bool) -> list[dict]:
    env = {**os.environ, "RAYON_NUM_THREADS": "1"}  # one file at a time, in order, as uploads
    args = [binary, "scan", "--format", "json", "--member-threads", str(threads)] + (["--cold"] if cold else [])
    out = subprocess.run([*args, *map(str, files)], capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode not in (0, 1):
        sys.exit(f"palisade scan exited {out.returncode}: {out.stderr.strip()[-500:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def release_key(path: Path) -> tuple[str, str]:
    """(normalized project, version) of a wheel or sdist filename."""
    name = path.name
    for suffix in (".tar.gz", ".zip", ".whl"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if path.name.endswith(".whl"):
        project, version = name.split("-")[:2]
    else:
        project, _, version = name.rpartition("-")
    return re.sub(r"[-_.]+", "-", project).lower(), version


def summary(rows: list[dict]) -> str:
    t = sorted(r["duration_ms"] for r in rows)
    if not t:
        return "no files"
    p95 = t[min(len(t) - 1, int(0.95 * len(t)))]
    under = sum(1 for x in t if x < TARGET_MS) / len(t)
    return f"median {statistics.median(t):7.1f} ms   p95 {p95:8.1f} ms   under {TARGET_MS:.0f} ms: {100 * under:4.0f}%   (n={len(t)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/scan-eval/benign"))
    ap.add_argument("--palisade-bin", default=os.environ.get("PALISADE_BIN", str(ROOT / "target/release/palisade")))
    ap.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 4), help="member threads (the server's setting)")
    a = ap.parse_args()
    files = sorted(p for p in a.dir.rglob("*") if p.name.endswith((".whl", ".tar.gz", ".zip")))
    if not files:
        sys.exit(f"no distributions under {a.dir} (fill it with shared/corpus/fetch-benign.py)")
    print(f"{len(files)} files under {a.dir}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")
    kinds = (("all", lambda r: True), ("wheels", lambda r: r["path"].endswith(".whl")),
             ("sdists", lambda r: not r["path"].endswith(".whl")))
    for threads in sorted({1, a.threads}):
        rows = measure(a.palisade_bin, files, threads, cold=True)
        label = "server setting" if threads == a.threads else "one thread"
        print(f"\ncold, --member-threads {threads} ({label}): every file analysed afresh")
        for kind, pick in kinds:
            print(f"  {kind:7s} {summary([r for r in rows if pick(r)])}")
    # Release order: each sdist, then its wheel; analyses reused by content, as in the server.
    ordered = sorted(files, key=lambda p: (release_key(p), p.name.endswith(".whl"), p.name))
    rows = measure(a.palisade_bin, ordered, a.threads, cold=False)
    print(f"\nrelease order (sdist, then its wheel), --member-threads {a.threads}, reuse on (the server)")
    for kind, pick in kinds:
        print(f"  {kind:7s} {summary([r for r in rows if pick(r)])}")
    releases: dict[tuple[str, str], float] = {}
    for r in rows:
        key = release_key(Path(r["path"]))
        releases[key] = releases.get(key, 0.0) + r["duration_ms"]
    t = sorted(releases.values())
    print(f"  per release (sdist + wheel): median {statistics.median(t):7.1f} ms   "
          f"p95 {t[min(len(t) - 1, int(0.95 * len(t)))]:8.1f} ms   (n={len(t)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
