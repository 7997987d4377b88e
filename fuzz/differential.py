#!/usr/bin/env python3
"""The longer run of the archive differential test (tests/e2e/test_archive_differential.py):
for a bounded time, generated hostile archives (and, with --corpus, every distribution under a
folder, such as the benign development set from shared/corpus/fetch-benign.py) are listed by
`palisade inspect` and extracted by Python's tarfile (data filter) and zipfile; any archive
Palisade calls complete must list exactly what Python extracts. Disagreements are saved under
fuzz/artifacts/differential/ for a regression test. Nothing is installed or run.

Usage: fuzz/differential.py [--seconds 600] [--seed 100000] [--corpus DIR] [--bin target/debug/palisade]
Never point --corpus at the malicious samples: they are encrypted zips for the scanner only."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))
import archive_oracle as oracle  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--seed", type=int, default=100_000, help="first generator seed")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--corpus", type=Path, help="also check every .whl/.tar.gz/.zip under this folder")
    ap.add_argument("--bin", type=Path, default=HERE.parent / "target" / "debug" / "palisade")
    args = ap.parse_args()
    out = HERE / "artifacts" / "differential"
    totals = {"agree": 0, "palisade_refused": 0, "both_refused": 0, "disagree": 0}
    started = time.monotonic()
    if args.corpus:
        files = sorted(p for p in args.corpus.rglob("*") if p.is_file() and p.name.endswith((".whl", ".tar.gz", ".zip", ".tar.bz2")))
        problems, counts = oracle.check_all(args.bin, files)
        print(f"corpus {args.corpus}: {len(files)} files, {counts}, {len(problems)} disagreements", flush=True)
        for p in problems:
            print("  " + p)
        totals["disagree"] += len(problems)
    seed = args.seed
    with tempfile.TemporaryDirectory(prefix="differential-") as tmp:
        while time.monotonic() - started < args.seconds:
            batch = []
            for s in range(seed, seed + args.batch):
                name, data = oracle.Generator(s).archive()
                p = Path(tmp) / f"{s}-{name}"
                p.write_bytes(data)
                batch.append(p)
            problems, counts = oracle.check_all(args.bin, batch)
            for k, v in counts.items():
                totals[k] += v
            totals["disagree"] += len(problems)
            for p in problems:
                print("DISAGREE " + p, flush=True)
                out.mkdir(parents=True, exist_ok=True)
                shutil.copy(Path(tmp) / p.split(":")[0], out)
            for p in batch:
                p.unlink()
            seed += args.batch
    print(f"seeds {args.seed}..{seed - 1} in {time.monotonic() - started:.0f} s: {totals}")
    return 1 if totals["disagree"] else 0


if __name__ == "__main__":
    sys.exit(main())
