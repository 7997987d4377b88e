#!/usr/bin/env python3
"""Malware-scanner evaluation: Palisade's `palisade scan` against the labelled corpus in
shared/corpus, with GuardDog (the reference open-source scanner) on a seeded sample.

    python3 bench/scan_eval.py                        # everything: 4,527 malicious, 299 benign,
                                                      #   GuardDog on 60 + 60
    python3 bench/scan_eval.py --malicious-limit 500 --guarddog-sample 20   # quicker
    python3 bench/scan_eval.py --guarddog-sample 0    # Palisade only
    python3 bench/scan_eval.py --no-palisade          # GuardDog only

Prints a report and writes bench/out/scan_eval.json. Runs with the system python3 (stdlib only).

SAFETY. shared/corpus/malicious-dev.zip holds real malware. This script only reads bytes: it
copies the selected archives (still packed: .tar.gz / .whl / .zip) out of the encrypted zip into
a scratch folder under /tmp, hands their paths to the two scanners (both static: neither
imports, builds or runs what it scans; GuardDog additionally runs under its kernel sandbox), and
deletes the scratch folder at the end unless --keep is given. Nothing is ever installed,
imported, built or executed from the corpus, and nothing is written inside the repository except
bench/out/scan_eval.json.

Palisade:  PALISADE_BIN (default target/release/palisade) `scan --format json --cold PATH...`,
           one JSON object per line per file; called with batches of paths, per-file time =
           duration_ms. `--cold`: no file reuses another's analysis (a wheel its sdist's), as
           GuardDog's one process per package cannot; verdicts are the same either way.
GuardDog:  `guarddog pypi scan FILE --output-format json`, one process per package, in its own
           venv (default /tmp/scan-eval/venv-guarddog, from bench/scan_eval_requirements.txt).
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime as dt
import hashlib
import io
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
DEFAULT_SCRATCH = Path("/tmp/scan-eval")
GD_REQUIREMENTS = BENCH / "scan_eval_requirements.txt"
ZIP_PASSWORD = b"infected"

TARGETS = {
    "detection_min": 0.97,
    "fp_sdist_max": 0.01,
    "fp_wheel_max": 0.01,
    # No popular package may reach the verdict that refuses an upload.
    "benign_malicious_max": 0,
    "speedup_min": 100.0,
}
PALISADE_FLAGGED = ("suspicious", "malicious")
# GuardDog 3.x scores every package 0-10 with its risk engine (guarddog/analyzer/risk_engine.py)
# and labels it no_risks_detected (0) / low (<5) / suspicious (5-7) / high_risk (>=7). A package
# counts as flagged by GuardDog when its label is high_risk; "suspicious or higher" is reported
# alongside as GuardDog's more sensitive operating point.
GD_FLAGGED_LABELS = ("high_risk",)
GD_SENSITIVE_LABELS = ("suspicious", "high_risk")
GD_FLAGGED_DEFINITION = (
    'GuardDog flags a package when its risk engine labels it "high_risk" '
    '(risk_score.score >= 7.0 of 10; the engine requires source-code evidence for that label). '
    'Also shown: "suspicious or higher" (score >= 5.0).'
)

T0 = time.monotonic()


def log(msg: str) -> None:
    el = time.monotonic() - T0
    print(f"[{int(el // 60):02d}:{el % 60:04.1f}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- small helpers


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    s = sorted(values)
    k = max(1, math.ceil(q / 100.0 * len(s)))
    return s[k - 1]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95% Wilson score interval for a proportion k/n."""
    if n == 0:
        return None
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def rate(k: int, n: int) -> dict:
    ci = wilson(k, n)
    return {
        "count": k,
        "of": n,
        "rate": (k / n) if n else None,
        "ci95": list(ci) if ci else None,
    }


def fmt_rate(r: dict) -> str:
    if not r["of"]:
        return "n/a (no packages)"
    lo, hi = r["ci95"]
    return f"{r['count']:>4}/{r['of']:<4} = {100 * r['rate']:5.1f}%  (95% CI {100 * lo:.1f}-{100 * hi:.1f}%)"


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "n/a"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 10:
        return f"{v:.0f} ms"
    return f"{v:.2f} ms"


def verdict_word(ok: bool | None) -> str:
    return {True: "MET", False: "NOT MET", None: "n/a"}[ok]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_kind(path: str) -> str:
    """Distribution kind from the file name: "sdist" or "wheel". The corpus's few malicious
    .zip files named like wheels (…-py3-none-any.zip) count as wheels."""
    name = os.path.basename(path).lower()
    if name.endswith(".whl") or re.search(r"-(py|cp)\d[\w.]*-[\w.]+-[\w.]+\.zip$", name):
        return "wheel"
    return "sdist"


def file_ext(path: str) -> str:
    name = os.path.basename(path).lower()
    for ext in (".tar.gz", ".tar.bz2", ".tgz", ".whl", ".zip", ".egg"):
        if name.endswith(ext):
            return ext.lstrip(".")
    return os.path.splitext(name)[1].lstrip(".") or "?"


def run_bounded(cmd: list[str], timeout: float, env: dict | None = None, cwd: str | None = None):
    """Run cmd in its own process group, killed as a group after `timeout` seconds.
    Returns dict(rc, stdout, stderr, timed_out, wall_s, cpu_s)."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
    except BaseException:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        raise
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {
        "rc": p.returncode,
        "stdout": out.decode("utf-8", "replace"),
        "stderr": err.decode("utf-8", "replace"),
        "timed_out": timed_out,
        "wall_s": wall,
        "cpu_s": cpu,
    }


def machine_info() -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
    }
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["mem_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["loadavg_start"] = list(os.getloadavg())
    return info


# ---------------------------------------------------------------- corpus


class Sample:
    """One distribution file of the evaluation: its label, kind and where it lies."""

    __slots__ = ("rel", "label", "kind", "ext", "abspath", "name", "version")

    def __init__(self, rel: str, label: str, abspath: Path, name: str = ""):
        self.rel = rel
        self.label = label  # "malicious" | "benign"
        self.kind = file_kind(rel)
        self.ext = file_ext(rel)
        self.abspath = str(abspath)
        self.name = name
        self.version = ""

    def key(self) -> str:
        return f"{self.label}:{self.rel}"


def safe_member(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and not name.startswith("/") and ".." not in parts and "\\" not in name


def extract_malicious(corpus: Path, dest: Path, limit: int | None, seed: int) -> list[Sample]:
    """Copy the selected malicious archives (still packed) out of the encrypted zip into dest.
    Bytes only: nothing is unpacked further, imported or run."""
    rows = list(csv.DictReader(open(corpus / "malicious-dev.tsv", newline=""), delimiter="\t"))
    rows.sort(key=lambda r: r["path"])
    if limit is not None and limit < len(rows):
        rows = sorted(random.Random(seed).sample(rows, limit), key=lambda r: r["path"])
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    t0 = time.perf_counter()
    out = []
    with zipfile.ZipFile(corpus / "malicious-dev.zip") as z:
        names = set(z.namelist())
        for r in rows:
            rel = r["path"]
            if rel not in names or not safe_member(rel):
                log(f"  skipping malicious entry {rel!r}: not in the zip or unsafe name")
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(rel, pwd=ZIP_PASSWORD) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.chmod(target, 0o444)
            out.append(Sample(rel, "malicious", target, r.get("cluster", "")))
    log(f"  {len(out)} malicious archives copied to {dest} in {time.perf_counter() - t0:.1f} s")
    return out


def ensure_benign(corpus: Path, dest: Path, fetch_timeout: float) -> tuple[list[Sample], list[str]]:
    """Fetch the benign set (pinned, hash-checked) into dest and return what is present."""
    notes = []
    rows = list(csv.DictReader(open(corpus / "benign-dev.tsv", newline=""), delimiter="\t"))
    log(f"  fetch-benign.py {dest} (downloads only what is missing)")
    res = run_bounded(
        [sys.executable, str(corpus / "fetch-benign.py"), str(dest)], timeout=fetch_timeout
    )
    ok_all = res["rc"] == 0 and not res["timed_out"]
    if not ok_all:
        tail = (res["stderr"].strip().splitlines() or ["(no message)"])[-5:]
        notes.append(
            "fetch-benign.py did not complete ("
            + ("timed out" if res["timed_out"] else f"exit {res['rc']}")
            + "): "
            + " | ".join(tail)
        )
    out = []
    for r in rows:
        p = dest / r["path"]
        if not p.is_file():
            continue
        if not ok_all and sha256(p) != r["sha256"]:
            continue  # only files the manifest vouches for
        s = Sample(r["path"], "benign", p, r["name"])
        s.kind = r["kind"]  # the manifest says; trust it over the file name
        s.version = r.get("version", "")
        out.append(s)
    if len(out) < len(rows):
        notes.append(f"benign set incomplete: {len(out)} of {len(rows)} files usable")
    log(f"  {len(out)} of {len(rows)} benign files ready in {dest}")
    return out, notes


# ---------------------------------------------------------------- Palisade


class PalisadeUnavailable(Exception):
    pass


def palisade_check(binary: str) -> tuple[str, list[str]]:
    """The binary's version, and `--cold` when it has the flag (builds before it had none)."""
    if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
        raise PalisadeUnavailable(f"no executable at {binary} (build it, or set PALISADE_BIN)")
    res = run_bounded([binary, "scan", "--help"], timeout=30)
    if res["rc"] != 0:
        msg = (res["stderr"] or res["stdout"]).strip().splitlines()
        raise PalisadeUnavailable(
            f"`{binary} scan --help` exited {res['rc']}: " + (msg[0] if msg else "")
        )
    cold = ["--cold"] if "--cold" in res["stdout"] else []
    ver = run_bounded([binary, "--version"], timeout=30)
    return ver["stdout"].strip() or "unknown", cold


def _parse_palisade_lines(text: str, cwd: str, by_path: dict[str, Sample], results: dict) -> int:
    """Record each result line; return how many lines were not a result for a path we passed."""
    bad = 0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if not isinstance(obj, dict) or "path" not in obj:
            bad += 1
            continue
        p = str(obj["path"])
        s = by_path.get(p)
        if s is None:
            s = by_path.get(os.path.realpath(os.path.join(cwd, p)))
        if s is None:
            bad += 1
            continue
        verdict = obj.get("verdict")
        findings = obj.get("findings") or []
        rules = sorted({str(f.get("rule")) for f in findings if isinstance(f, dict) and f.get("rule")})
        sev = collections.Counter(
            str(f.get("severity")) for f in findings if isinstance(f, dict)
        )
        dur = obj.get("duration_ms")
        results[s.key()] = {
            "verdict": verdict if verdict in ("clean", "suspicious", "malicious") else None,
            "score": obj.get("score"),
            "rules": rules,
            "severities": dict(sev),
            "n_findings": len(findings),
            "duration_ms": float(dur) if isinstance(dur, (int, float)) else None,
            "error": None
            if verdict in ("clean", "suspicious", "malicious")
            else f"unexpected verdict {verdict!r}",
        }
    return bad


def palisade_scan(binary: str, samples: list[Sample], batch: int, per_file_timeout: float,
                  cwd: str, notes: list[str], flags: list[str]) -> tuple[dict, dict]:
    """Scan samples with `palisade scan --format json`, a batch of paths per process.
    Returns (results by sample key, run stats)."""
    by_path = {}
    for s in samples:
        by_path[s.abspath] = s
        by_path[os.path.realpath(s.abspath)] = s
    results: dict[str, dict] = {}
    wall = cpu = 0.0
    bad = 0
    batches = [samples[i : i + batch] for i in range(0, len(samples), batch)]
    for bi, chunk in enumerate(batches):
        timeout = 60 + 2.0 * len(chunk)
        res = run_bounded(
            [binary, "scan", "--format", "json", *flags, *[s.abspath for s in chunk]],
            timeout=timeout,
            cwd=cwd,
        )
        wall += res["wall_s"]
        cpu += res["cpu_s"]
        if res["rc"] == 2 and not res["timed_out"]:
            msg = res["stderr"].strip().splitlines()
            raise PalisadeUnavailable("palisade scan: usage error: " + (msg[-1] if msg else "exit 2"))
        bad += _parse_palisade_lines(res["stdout"], cwd, by_path, results)
        missing = [s for s in chunk if s.key() not in results]
        if res["timed_out"]:
            notes.append(f"palisade: batch {bi + 1} ({len(chunk)} files) hit its {timeout:.0f} s limit")
        elif res["rc"] not in (0, 1):
            notes.append(f"palisade: batch {bi + 1} exited {res['rc']}: "
                         + " | ".join(res["stderr"].strip().splitlines()[-2:]))
        if missing:
            notes.append(f"palisade: batch {bi + 1}: {len(missing)} file(s) without a result; "
                         f"rescanning them one at a time ({per_file_timeout:.0f} s limit each)")
            timeouts = 0
            for s in missing:
                if timeouts >= 10:
                    results[s.key()] = {"verdict": None, "error": "not rescanned (too many time-outs)"}
                    continue
                r1 = run_bounded([binary, "scan", "--format", "json", *flags, s.abspath],
                                 timeout=per_file_timeout, cwd=cwd)
                wall += r1["wall_s"]
                cpu += r1["cpu_s"]
                bad += _parse_palisade_lines(r1["stdout"], cwd, by_path, results)
                if s.key() not in results:
                    timeouts += r1["timed_out"]
                    why = (f"timed out after {per_file_timeout:.0f} s" if r1["timed_out"]
                           else f"exit {r1['rc']}: "
                           + " | ".join(r1["stderr"].strip().splitlines()[-1:]))
                    results[s.key()] = {"verdict": None, "error": why, "duration_ms": None}
        if (bi + 1) % 5 == 0 or bi + 1 == len(batches):
            log(f"  palisade: {min((bi + 1) * batch, len(samples))}/{len(samples)} files, "
                f"{wall:.1f} s wall")
    if bad:
        notes.append(f"palisade: {bad} output line(s) were not a result for a path we passed")
    return results, {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "files": len(samples),
                     "batch_size": batch}


# ---------------------------------------------------------------- GuardDog


def ensure_guarddog(venv: Path, install_timeout: float) -> Path:
    gd = venv / "bin" / "guarddog"
    if gd.exists() and run_bounded([str(gd), "--version"], timeout=120)["rc"] == 0:
        return gd
    log(f"  creating {venv} and installing GuardDog from {GD_REQUIREMENTS.name}")
    if venv.is_symlink() or venv.is_file():
        venv.unlink()
    elif venv.exists():
        shutil.rmtree(venv)
    r = run_bounded([sys.executable, "-m", "venv", str(venv)], timeout=300)
    if r["rc"] != 0:
        raise RuntimeError("python -m venv failed: " + r["stderr"][-500:])
    r = run_bounded([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                     "-r", str(GD_REQUIREMENTS)], timeout=install_timeout)
    if r["rc"] != 0 or not gd.exists():
        raise RuntimeError("pip install of GuardDog failed: "
                           + ("timed out" if r["timed_out"] else r["stderr"][-800:]))
    return gd


def make_probe_sdist(dest: Path) -> Path:
    """A tiny synthetic sdist (written here, harmless) used to measure GuardDog's fixed cost
    per invocation: interpreter start, imports, rule compilation."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "probe-0.0.1.tar.gz"
    files = {
        "probe-0.0.1/PKG-INFO": "Metadata-Version: 2.1\nName: probe\nVersion: 0.0.1\n",
        "probe-0.0.1/setup.py": "from setuptools import setup\nsetup(name='probe', version='0.0.1')\n",
        "probe-0.0.1/probe/__init__.py": "def hello():\n    return 'hello'\n",
    }
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 0
            tf.addfile(ti, io.BytesIO(data))
    return path


def guarddog_one(gd: Path, path: str, timeout: float, env: dict, sandbox: bool) -> dict:
    cmd = [str(gd), "pypi", "scan", path, "--output-format", "json"]
    if not sandbox:
        cmd.append("--no-sandbox")
    res = run_bounded(cmd, timeout=timeout, env=env)
    out = {"wall_ms": round(res["wall_s"] * 1000, 1), "cpu_ms": round(res["cpu_s"] * 1000, 1),
           "label": None, "score": None, "rules": [], "threat_rules": [], "error": None}
    if res["timed_out"]:
        out["error"] = f"timed out after {timeout:.0f} s"
        return out
    text = res["stdout"].strip()
    obj = None
    if text:
        try:
            obj = json.loads(text)
        except ValueError:
            # Be lenient about stray lines around the JSON document.
            start, end = text.find("{"), text.rfind("}")
            try:
                obj = json.loads(text[start : end + 1]) if start >= 0 else None
            except ValueError:
                obj = None
    if not isinstance(obj, dict) or "risk_score" not in obj:
        err = [l for l in res["stderr"].splitlines()
               if l.strip() and "Network error" not in l and "Failed to download" not in l]
        out["error"] = f"exit {res['rc']}, no JSON result: " + " | ".join(err[-2:])[:300]
        return out
    rs = obj.get("risk_score") or {}
    out["label"] = rs.get("label")
    out["score"] = rs.get("score")
    results = obj.get("results") or {}
    out["rules"] = sorted(k for k, v in results.items() if v)
    out["threat_rules"] = sorted({r.get("threat_rule") for r in obj.get("risks") or []
                                  if isinstance(r, dict) and r.get("threat_rule")})
    if obj.get("errors"):
        out["error"] = "guarddog reported rule errors: " + ", ".join(sorted(obj["errors"]))[:300]
        out["partial"] = True
    return out


def guarddog_run(gd: Path, samples: list[Sample], timeout: float, tmp: Path, sandbox: bool,
                 notes: list[str]) -> tuple[dict, dict]:
    tmp.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["TMPDIR"] = str(tmp)  # GuardDog unpacks into a temp dir: keep it in our scratch folder
    env.pop("PYTHONPATH", None)
    # Fixed cost per invocation, on a tiny synthetic package.
    probe = make_probe_sdist(tmp.parent / "probe")
    probe_ms = []
    for _ in range(3):
        r = guarddog_one(gd, str(probe), timeout, env, sandbox)
        if r["error"] and not r.get("partial"):
            if sandbox and "sandbox" in r["error"].lower():
                notes.append("GuardDog's kernel sandbox is unavailable here: ran with --no-sandbox")
                sandbox = False
                r = guarddog_one(gd, str(probe), timeout, env, sandbox)
            if r["error"] and not r.get("partial"):
                raise RuntimeError("GuardDog cannot scan a trivial package: " + r["error"])
        probe_ms.append(r["wall_ms"])
    results = {}
    for i, s in enumerate(samples):
        results[s.key()] = guarddog_one(gd, s.abspath, timeout, env, sandbox)
        if results[s.key()]["error"] and "timed out" in results[s.key()]["error"]:
            notes.append(f"guarddog: {s.rel} timed out after {timeout:.0f} s (counted not flagged)")
        if (i + 1) % 20 == 0 or i + 1 == len(samples):
            log(f"  guarddog: {i + 1}/{len(samples)} packages")
    return results, {"probe_wall_ms": probe_ms, "sandbox": sandbox}


# ---------------------------------------------------------------- release pairs


def json_base() -> str:
    """The JSON API of the index pip uses (PIP_INDEX_URL), as fetch-benign.py asks it."""
    index = os.environ.get("PIP_INDEX_URL", "").rstrip("/")
    if index:
        return index[: -len("/simple")] + "/pypi" if index.endswith("/simple") else index
    return "https://pypi.org/pypi"


def previous_file(name: str, version: str, current: str, kind: str) -> dict | None:
    """The same kind of file in the project's release before `version` (by first upload time,
    yanked files left out): for a wheel, the one with the same tags. None if there is none."""
    import urllib.parse
    import urllib.request
    doc_url = f"{json_base()}/{name}/json"
    with urllib.request.urlopen(doc_url, timeout=60) as r:
        releases = json.load(r).get("releases", {})
    def first_upload(files):
        return min(f["upload_time_iso_8601"] for f in files)
    cur = releases.get(version) or []
    if not cur:
        return None
    cur_time = first_upload(cur)
    earlier = []
    for v, files in releases.items():
        files = [f for f in files if not f.get("yanked")]
        if v != version and files and first_upload(files) < cur_time:
            earlier.append((first_upload(files), v, files))
    earlier.sort(reverse=True)
    # A wheel's last three dash-separated fields are its tags.
    tags = "-" + "-".join(current[: -len(".whl")].split("-")[-3:]) + ".whl" if kind == "wheel" else ""
    for _, v, files in earlier[:1]:
        for f in files:
            fn = f["filename"]
            # Indexes may answer with addresses relative to the document.
            found = {"version": v, **f, "url": urllib.parse.urljoin(doc_url, f["url"])}
            if kind == "sdist" and f.get("packagetype") == "sdist" and fn.endswith(".tar.gz"):
                return found
            if kind == "wheel" and fn.endswith(".whl") and fn.endswith(tags):
                return found
    return None


def fetch_previous(benign: list[Sample], n: int, seed: int, dest: Path, notes: list[str]) -> list[tuple]:
    """(old path, old version, new sample) for the previous release of n projects of the benign
    set, sdist and wheel each, downloaded into dest (kept between runs, hash-checked)."""
    import urllib.request
    by_name = collections.defaultdict(list)
    for s in benign:
        by_name[s.name].append(s)
    names = sorted(k for k, v in by_name.items() if len(v) == 2)
    chosen = sorted(random.Random(seed).sample(names, min(n, len(names))))
    pairs = []
    for name in chosen:
        for s in by_name[name]:
            if not s.version:
                continue
            try:
                prev = previous_file(name, s.version, os.path.basename(s.rel), s.kind)
            except Exception as e:  # the index unreachable: say so, measure the rest
                notes.append(f"release pairs: {name}: {type(e).__name__}: {e}")
                continue
            if not prev or prev.get("size", 0) > 40 << 20:
                continue
            target = dest / s.kind / prev["filename"]
            want = prev.get("digests", {}).get("sha256")
            if not (target.is_file() and sha256(target) == want):
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_suffix(target.suffix + ".part")
                try:
                    with urllib.request.urlopen(prev["url"], timeout=300) as r, open(tmp, "wb") as f:
                        shutil.copyfileobj(r, f, 1 << 20)
                except Exception as e:
                    notes.append(f"release pairs: {prev['filename']}: {type(e).__name__}: {e}")
                    continue
                if sha256(tmp) != want:
                    tmp.unlink()
                    notes.append(f"release pairs: {prev['filename']}: sha256 mismatch")
                    continue
                tmp.replace(target)
            pairs.append((str(target), prev["version"], s))
    return pairs


def release_pairs(binary: str, pairs: list[tuple], pres: dict) -> dict:
    """Scans each new release against its previous one (`palisade scan --against OLD NEW`) and
    counts the release-comparison findings, and verdicts they changed."""
    fired = collections.Counter()
    rows = []
    for old, old_version, s in pairs:
        res = run_bounded([binary, "scan", "--format", "json", "--against", old, s.abspath], timeout=120)
        try:
            obj = json.loads(res["stdout"].strip().splitlines()[-1])
        except (ValueError, IndexError):
            rows.append({"new": s.rel, "error": f"exit {res['rc']}"})
            continue
        news = sorted({f["rule"] for f in obj.get("findings", []) if f["rule"].startswith("release-new-")})
        fired.update(news)
        alone = (pres.get(s.key()) or {}).get("verdict")
        rows.append({"new": s.rel, "old": os.path.basename(old), "old_version": old_version, "kind": s.kind,
                     "news": news, "verdict": obj.get("verdict"), "verdict_alone": alone,
                     "points": round(sum(f["weight"] for f in obj.get("findings", [])
                                         if f["rule"].startswith("release-new-")), 2)})
    ok = [r for r in rows if "error" not in r]
    return {
        "pairs": len(ok),
        "by_kind": dict(collections.Counter(r["kind"] for r in ok)),
        "with_news": sum(bool(r["news"]) for r in ok),
        "raised": [r for r in ok if r["verdict"] != r["verdict_alone"] and r["verdict_alone"] == "clean"],
        "rules": dict(fired.most_common()),
        "errors": [r for r in rows if "error" in r],
        "rows": rows,
    }


# ---------------------------------------------------------------- figures


def figures(samples: list[Sample], results: dict, flagged, time_key: str, rules_key: str) -> dict:
    """Detection, FP by kind, rules on benign, timing for one scanner over samples."""
    mal = [s for s in samples if s.label == "malicious"]
    ben = [s for s in samples if s.label == "benign"]

    def is_flagged(s):
        r = results.get(s.key())
        return bool(r) and flagged(r)

    def errs(group):
        return [s for s in group if not results.get(s.key()) or results[s.key()].get("verdict", 1) is None
                or (results[s.key()].get("error") and not results[s.key()].get("partial"))]

    det = rate(sum(map(is_flagged, mal)), len(mal))
    by_ext = {}
    for ext in sorted({s.ext for s in mal}):
        g = [s for s in mal if s.ext == ext]
        by_ext[ext] = rate(sum(map(is_flagged, g)), len(g))
    fp = {}
    for kind in ("sdist", "wheel"):
        g = [s for s in ben if s.kind == kind]
        fp[kind] = rate(sum(map(is_flagged, g)), len(g))
    fired = collections.Counter()
    fired_flagged = collections.Counter()
    for s in ben:
        r = results.get(s.key()) or {}
        for rule in r.get(rules_key) or []:
            fired[rule] += 1
            if is_flagged(s):
                fired_flagged[rule] += 1
    times = [results[s.key()][time_key] for s in samples
             if results.get(s.key()) and results[s.key()].get(time_key) is not None]
    per_set_times = {}
    for label, g in (("malicious", mal), ("benign", ben)):
        t = [results[s.key()][time_key] for s in g
             if results.get(s.key()) and results[s.key()].get(time_key) is not None]
        per_set_times[label] = {"median_ms": median(t), "p95_ms": percentile(t, 95), "n": len(t)}
    return {
        "malicious": len(mal),
        "benign": len(ben),
        "detection": det,
        "detection_by_ext": by_ext,
        "fp": fp,
        "benign_rules": [{"rule": k, "packages": v, "flagged_packages": fired_flagged.get(k, 0)}
                         for k, v in fired.most_common()],
        "time": {"median_ms": median(times), "p95_ms": percentile(times, 95),
                 "mean_ms": statistics.fmean(times) if times else None, "n": len(times),
                 "by_set": per_set_times},
        "errors": {"malicious": [s.rel for s in errs(mal)], "benign": [s.rel for s in errs(ben)]},
        "missed": [s.rel for s in mal if not is_flagged(s)],
        "benign_malicious": sum(1 for s in ben if (results.get(s.key()) or {}).get("verdict") == "malicious"),
        "flagged_benign": [s.rel for s in ben if is_flagged(s)],
    }


def target_checks(f: dict) -> dict:
    def le(r, m):
        return None if r["rate"] is None else r["rate"] <= m
    return {
        "benign_malicious": None if "benign_malicious" not in f else f["benign_malicious"] <= TARGETS["benign_malicious_max"],
        "detection": None if f["detection"]["rate"] is None else f["detection"]["rate"] >= TARGETS["detection_min"],
        "fp_sdist": le(f["fp"]["sdist"], TARGETS["fp_sdist_max"]),
        "fp_wheel": le(f["fp"]["wheel"], TARGETS["fp_wheel_max"]),
    }


# ---------------------------------------------------------------- report


def report_block(title: str, f: dict, results: dict, rules_word: str, time_word: str,
                 lines: list[str], extra_rates: dict | None = None, rule_rows: int = 15,
                 list_misses: int = 15) -> None:
    chk = target_checks(f)
    lines.append("")
    lines.append(title)
    lines.append("-" * len(title))
    lines.append(f"  detection (malicious flagged)   {fmt_rate(f['detection'])}   "
                 f"target >= {100 * TARGETS['detection_min']:.0f}%: {verdict_word(chk['detection'])}")
    if len(f["detection_by_ext"]) > 1:
        lines.append("    by file type: " + ", ".join(
            f"{ext} {r['count']}/{r['of']}" for ext, r in f["detection_by_ext"].items()))
    lines.append(f"  false positives, benign sdists  {fmt_rate(f['fp']['sdist'])}   "
                 f"target <= {100 * TARGETS['fp_sdist_max']:.0f}%: {verdict_word(chk['fp_sdist'])}")
    lines.append(f"  false positives, benign wheels  {fmt_rate(f['fp']['wheel'])}   "
                 f"target <= {100 * TARGETS['fp_wheel_max']:.0f}%: {verdict_word(chk['fp_wheel'])}")
    if chk.get("benign_malicious") is not None and "duration_ms" in time_word:
        lines.append(f"  benign files refused (verdict malicious)  {f['benign_malicious']:>4}   "
                     f"target {TARGETS['benign_malicious_max']}: {verdict_word(chk['benign_malicious'])}")
    for label, (rdet, rsd, rwh) in (extra_rates or {}).items():
        lines.append(f"  {label}: detection {fmt_rate(rdet)}")
        lines.append(f"  {' ' * len(label)}  FP sdists  {fmt_rate(rsd)}")
        lines.append(f"  {' ' * len(label)}  FP wheels  {fmt_rate(rwh)}")
    t = f["time"]
    lines.append(f"  time per package ({time_word}): median {fmt_ms(t['median_ms'])}, "
                 f"p95 {fmt_ms(t['p95_ms'])}, mean {fmt_ms(t['mean_ms'])}  (n={t['n']}; "
                 f"malicious median {fmt_ms(t['by_set']['malicious']['median_ms'])}, "
                 f"benign median {fmt_ms(t['by_set']['benign']['median_ms'])})")
    ne = len(f["errors"]["malicious"]) + len(f["errors"]["benign"])
    if ne:
        lines.append(f"  errors/time-outs (counted as not flagged): {ne} — "
                     + ", ".join((f["errors"]["malicious"] + f["errors"]["benign"])[:5])
                     + (" …" if ne > 5 else ""))
    lines.append(f"  rules firing most on benign packages ({rules_word}; "
                 f"packages with >= 1 finding, [of them flagged]):")
    if not f["benign_rules"]:
        lines.append("    (none)")
    for row in f["benign_rules"][:rule_rows]:
        lines.append(f"    {row['rule']:<48} {row['packages']:>4}  [{row['flagged_packages']}]")
    if f["flagged_benign"]:
        lines.append(f"  benign packages flagged ({len(f['flagged_benign'])}):")
        for rel in f["flagged_benign"][:30]:
            r = results.get("benign:" + rel, {})
            what = r.get("verdict") or r.get("label")
            lines.append(f"    {rel}  {what}  score={r.get('score')}  "
                         f"rules={','.join((r.get('rules') if 'verdict' in r else r.get('threat_rules')) or [])[:120]}")
    if f["missed"] and list_misses:
        lines.append(f"  malicious packages not flagged ({len(f['missed'])}), first {min(list_misses, len(f['missed']))}:")
        for rel in f["missed"][:list_misses]:
            lines.append(f"    {rel}")


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--malicious-limit", type=int, default=None,
                    help="scan N malicious packages chosen with --seed (default: all 4,527)")
    ap.add_argument("--guarddog-sample", type=int, default=60,
                    help="GuardDog scans N malicious + N benign packages (half sdists, half "
                         "wheels), chosen with --seed; 0 skips GuardDog (default 60)")
    ap.add_argument("--benign-dir", type=Path, default=DEFAULT_SCRATCH / "benign",
                    help="cache for the benign set, filled by fetch-benign.py (default "
                         "/tmp/scan-eval/benign; kept between runs)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the scratch copy of the malicious samples (default: deleted)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--corpus", type=Path,
                    default=Path(os.environ.get("SCAN_EVAL_CORPUS", DEFAULT_CORPUS)))
    ap.add_argument("--scratch", type=Path, default=DEFAULT_SCRATCH,
                    help="scratch folder under which malicious samples are copied (default /tmp/scan-eval)")
    ap.add_argument("--palisade-bin",
                    default=os.environ.get("PALISADE_BIN", str(ROOT / "target" / "release" / "palisade")))
    ap.add_argument("--no-palisade", action="store_true", help="skip Palisade")
    ap.add_argument("--batch-size", type=int, default=200, help="paths per `palisade scan` call")
    ap.add_argument("--palisade-timeout", type=float, default=60,
                    help="seconds per file when a file has to be rescanned alone (a batch gets "
                         "60 s + 2 s per file)")
    ap.add_argument("--guarddog-venv", type=Path, default=DEFAULT_SCRATCH / "venv-guarddog")
    ap.add_argument("--guarddog-timeout", type=float, default=60,
                    help="seconds per GuardDog scan; a time-out counts as not flagged (default 60)")
    ap.add_argument("--guarddog-no-sandbox", action="store_true",
                    help="pass --no-sandbox to GuardDog (only where its sandbox is unavailable)")
    ap.add_argument("--out", type=Path, default=BENCH / "out" / "scan_eval.json")
    ap.add_argument("--release-pairs", type=int, default=40,
                    help="fetch the previous release of N benign projects (sdist and wheel) from the "
                         "index and scan each new release against it (default 40; 0 skips)")
    ap.add_argument("--previous-dir", type=Path, default=DEFAULT_SCRATCH / "previous",
                    help="cache for those previous releases (default /tmp/scan-eval/previous)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="an earlier run's JSON (--out) whose verdicts are printed beside this run's")
    a = ap.parse_args()
    if a.malicious_limit is not None and a.malicious_limit < 0:
        ap.error("--malicious-limit must be >= 0")
    if a.batch_size < 1:
        ap.error("--batch-size must be >= 1")

    scratch = a.scratch.resolve()
    if not str(scratch).startswith("/tmp/"):
        ap.error("--scratch must be under /tmp (malicious samples never leave /tmp)")
    mal_dir = scratch / "malicious"
    gd_tmp = scratch / "guarddog-tmp"
    notes: list[str] = []
    doc: dict = {
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "targets": TARGETS,
        "notes": notes,
    }

    # SIGTERM/SIGHUP -> normal exit path so the scratch copy is removed.
    def _term(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGHUP, _term)

    try:
        return run(a, scratch, mal_dir, gd_tmp, notes, doc)
    finally:
        for d in (mal_dir, gd_tmp, scratch / "probe"):
            if d.exists() and (not a.keep or d != mal_dir):
                shutil.rmtree(d, ignore_errors=True)
        if a.keep and mal_dir.exists():
            log(f"kept malicious samples in {mal_dir} (--keep): delete it when done")
        else:
            log(f"removed scratch copies under {scratch}")


def run(a, scratch: Path, mal_dir: Path, gd_tmp: Path, notes: list[str], doc: dict) -> int:
    corpus = a.corpus
    if not (corpus / "malicious-dev.zip").is_file():
        print(f"corpus not found at {corpus} (use --corpus)", file=sys.stderr)
        return 2
    scratch.mkdir(parents=True, exist_ok=True)

    log("corpus: copying malicious samples (bytes only) to scratch")
    malicious = extract_malicious(corpus, mal_dir, a.malicious_limit, a.seed)
    log("corpus: benign set")
    benign, bnotes = ensure_benign(corpus, a.benign_dir.resolve(), fetch_timeout=1800)
    notes.extend(bnotes)
    everything = malicious + benign
    ext_counts = collections.Counter(s.ext for s in malicious)
    doc["corpus"] = {
        "path": str(corpus),
        "malicious": len(malicious),
        "malicious_by_ext": dict(ext_counts),
        "benign_sdist": sum(s.kind == "sdist" for s in benign),
        "benign_wheel": sum(s.kind == "wheel" for s in benign),
    }

    # GuardDog sample, fixed by the seed.
    rng = random.Random(a.seed)
    n = max(0, a.guarddog_sample)
    gd_mal = sorted(rng.sample(malicious, min(n, len(malicious))), key=lambda s: s.rel)
    b_sd = [s for s in benign if s.kind == "sdist"]
    b_wh = [s for s in benign if s.kind == "wheel"]
    n_sd = min(len(b_sd), n // 2)
    n_wh = min(len(b_wh), n - n_sd)
    gd_ben = sorted(rng.sample(b_sd, n_sd) + rng.sample(b_wh, n_wh), key=lambda s: s.rel)
    gd_samples = gd_mal + gd_ben

    # ---- Palisade
    pal = {"available": False, "binary": a.palisade_bin}
    doc["palisade"] = pal
    pres: dict = {}
    if a.no_palisade:
        pal["skipped"] = "--no-palisade"
    else:
        try:
            pal["version"], flags = palisade_check(a.palisade_bin)
            log(f"palisade: scanning {len(everything)} files in batches of {a.batch_size}")
            pnotes: list[str] = []
            # Malicious and benign in separate runs so each set's wall time is its own.
            pres_m, stats_m = palisade_scan(a.palisade_bin, malicious, a.batch_size,
                                            a.palisade_timeout, str(scratch), pnotes, flags)
            pres_b, stats_b = palisade_scan(a.palisade_bin, benign, a.batch_size,
                                            a.palisade_timeout, str(scratch), pnotes, flags)
            pres = {**pres_m, **pres_b}
            notes.extend(pnotes)
            pal["available"] = True
            pal["run"] = {"malicious": stats_m, "benign": stats_b}
        except PalisadeUnavailable as e:
            pal["skipped"] = str(e)
            notes.append(f"Palisade not measured: {e}")
            log(f"palisade: not measured: {e}")

    def pal_flagged(r):
        return r.get("verdict") in PALISADE_FLAGGED

    if pal["available"]:
        pal["full"] = figures(everything, pres, pal_flagged, "duration_ms", "rules")
        pal["full"]["targets_met"] = target_checks(pal["full"])
        pal["full"]["verdicts"] = {
            lab: dict(collections.Counter(str(pres.get(s.key(), {}).get("verdict"))
                                          for s in everything if s.label == lab))
            for lab in ("malicious", "benign")
        }
        if gd_samples:
            pal["guarddog_sample"] = figures(gd_samples, pres, pal_flagged, "duration_ms", "rules")
        if a.baseline:
            try:
                before = json.loads(a.baseline.read_text())["palisade"]["full"]
                pal["baseline"] = {"file": str(a.baseline), "verdicts": before["verdicts"],
                                   "detection": before["detection"], "fp": before["fp"],
                                   "generated": json.loads(a.baseline.read_text()).get("generated")}
            except (OSError, ValueError, KeyError) as e:
                notes.append(f"--baseline {a.baseline}: unreadable ({e})")
        if a.release_pairs > 0:
            log(f"release pairs: previous releases of {a.release_pairs} benign projects")
            pairs = fetch_previous(benign, a.release_pairs, a.seed, a.previous_dir.resolve(), notes)
            log(f"release pairs: {len(pairs)} pairs fetched; scanning each with --against")
            pal["release_pairs"] = release_pairs(a.palisade_bin, pairs, pres)

    # ---- GuardDog
    gdoc = {"sample": {"seed": a.seed, "malicious": len(gd_mal), "benign_sdist": n_sd,
                       "benign_wheel": n_wh},
            "flagged_definition": GD_FLAGGED_DEFINITION}
    doc["guarddog"] = gdoc
    gres: dict = {}
    if not gd_samples:
        gdoc["skipped"] = "--guarddog-sample 0"
    else:
        try:
            gd = ensure_guarddog(a.guarddog_venv, install_timeout=900)
            v = run_bounded([str(gd), "--version"], timeout=60)
            gdoc["version"] = v["stdout"].strip().splitlines()[-1] if v["stdout"].strip() else "unknown"
            log(f"guarddog {gdoc['version']}: {len(gd_mal)} malicious + {len(gd_ben)} benign, "
                f"one process each, {a.guarddog_timeout:.0f} s limit")
            gres, gstats = guarddog_run(gd, gd_samples, a.guarddog_timeout, gd_tmp,
                                        not a.guarddog_no_sandbox, notes)
            gdoc.update(gstats)
            gdoc["available"] = True
        except Exception as e:  # report what we have, say why GuardDog is missing
            gdoc["available"] = False
            gdoc["skipped"] = f"{type(e).__name__}: {e}"
            notes.append(f"GuardDog not measured: {e}")
            log(f"guarddog: not measured: {e}")
    if gdoc.get("available"):
        gdoc["figures"] = figures(gd_samples, gres, lambda r: r.get("label") in GD_FLAGGED_LABELS,
                                  "wall_ms", "threat_rules")
        gdoc["figures"]["targets_met"] = target_checks(gdoc["figures"])
        sens = figures(gd_samples, gres, lambda r: r.get("label") in GD_SENSITIVE_LABELS,
                       "wall_ms", "threat_rules")
        gdoc["suspicious_or_higher"] = {"detection": sens["detection"], "fp": sens["fp"]}
        gdoc["labels"] = {
            lab: dict(collections.Counter(str(gres.get(s.key(), {}).get("label"))
                                          for s in gd_samples if s.label == lab))
            for lab in ("malicious", "benign")
        }
        gdoc["fixed_cost_ms"] = median(gdoc["probe_wall_ms"])
        cpu = [r["cpu_ms"] for r in gres.values() if r.get("cpu_ms") is not None]
        gdoc["cpu_ms"] = {"median_ms": median(cpu), "p95_ms": percentile(cpu, 95)}

    # ---- speed ratio
    speed = {}
    if pal.get("available") and gdoc.get("available"):
        p_med = pal["guarddog_sample"]["time"]["median_ms"]
        g_med = gdoc["figures"]["time"]["median_ms"]
        if p_med and g_med:
            speed["guarddog_median_ms"] = g_med
            speed["palisade_median_ms_same_sample"] = p_med
            speed["ratio"] = g_med / p_med
            speed["ratio_net_of_guarddog_startup"] = max(g_med - gdoc["fixed_cost_ms"], 0) / p_med
            speed["target_met"] = speed["ratio"] >= TARGETS["speedup_min"]
    doc["speed"] = speed

    # ---- per-file detail (rules and verdicts only; no code excerpts)
    doc["per_file"] = []
    for s in everything:
        row = {"path": s.rel, "label": s.label, "kind": s.kind}
        if s.key() in pres:
            r = pres[s.key()]
            row["palisade"] = {k: r.get(k) for k in ("verdict", "score", "rules", "duration_ms", "error")}
        if s.key() in gres:
            r = gres[s.key()]
            row["guarddog"] = {k: r.get(k) for k in ("label", "score", "threat_rules", "rules",
                                                     "wall_ms", "cpu_ms", "error")}
        doc["per_file"].append(row)
    doc["machine"]["loadavg_end"] = list(os.getloadavg())
    doc["elapsed_s"] = round(time.monotonic() - T0, 1)

    lines = render(doc, pres, gres)
    print("\n".join(lines))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    doc["report"] = lines
    tmp = a.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(a.out)
    log(f"wrote {a.out}")
    return 0


def render(doc: dict, pres: dict, gres: dict) -> list[str]:
    m = doc["machine"]
    c = doc["corpus"]
    L = []
    L.append("Palisade malware-scanner evaluation")
    L.append("=" * 35)
    L.append(f"{doc['generated']}  elapsed {doc['elapsed_s']:.0f} s")
    L.append(f"machine: {m.get('cores')} cores, {m.get('mem_gib')} GiB, {m.get('cpu', '?')}; "
             f"load avg at start {m['loadavg_start'][0]:.2f}, at end {m['loadavg_end'][0]:.2f} "
             "(shared and noisy: timings carry that noise)")
    L.append(f"corpus: {c['malicious']} malicious ("
             + ", ".join(f"{v} {k}" for k, v in sorted(c["malicious_by_ext"].items()))
             + f"), benign {c['benign_sdist']} sdists + {c['benign_wheel']} wheels  [{c['path']}]")
    L.append("flagged: Palisade verdict suspicious or malicious; " + GD_FLAGGED_DEFINITION)
    L.append(f"targets: detection >= {100 * TARGETS['detection_min']:.0f}%, FP <= "
             f"{100 * TARGETS['fp_sdist_max']:.0f}% on sdists and on wheels, Palisade median >= "
             f"{TARGETS['speedup_min']:.0f}x faster than GuardDog")

    pal = doc["palisade"]
    if pal.get("available"):
        f = pal["full"]
        report_block(f"Palisade {pal.get('version', '')} — full sets", f, pres,
                     "rule id", "duration_ms from palisade scan", L)
        run = pal["run"]
        tot_files = run["malicious"]["files"] + run["benign"]["files"]
        tot_wall = run["malicious"]["wall_s"] + run["benign"]["wall_s"]
        L.append(f"  verdicts: malicious set {f['verdicts']['malicious']}, benign set {f['verdicts']['benign']}")
        if pal.get("baseline"):
            b = pal["baseline"]
            L.append(f"  before ({b['file']}, {b.get('generated')}): malicious set {b['verdicts']['malicious']}, "
                     f"benign set {b['verdicts']['benign']}")
            L.append(f"    detection {fmt_rate(b['detection'])}; FP sdists {fmt_rate(b['fp']['sdist'])}; "
                     f"FP wheels {fmt_rate(b['fp']['wheel'])}")
        L.append(f"  throughput: {tot_files} files in {tot_wall:.1f} s wall "
                 f"({tot_files / tot_wall if tot_wall else 0:.0f} files/s, batches of "
                 f"{run['malicious']['batch_size']}, both cores), "
                 f"{1000 * (run['malicious']['cpu_s'] + run['benign']['cpu_s']) / max(tot_files, 1):.1f} "
                 "ms CPU per file on average")
    else:
        L.append("")
        L.append(f"Palisade: not measured — {pal.get('skipped')}")

    rp = pal.get("release_pairs")
    if rp:
        L.append("")
        L.append("What changed since the previous release (benign release pairs)")
        L.append("-" * 62)
        L.append(f"  {rp['pairs']} pairs ({', '.join(f'{v} {k}' for k, v in sorted(rp['by_kind'].items()))}): "
                 f"the new release scanned with --against the previous one")
        L.append(f"  pairs with at least one release-new-* finding: {rp['with_news']} of {rp['pairs']}"
                 + (f" ({100 * rp['with_news'] / rp['pairs']:.0f}%)" if rp["pairs"] else ""))
        L.append(f"  pairs a clean release became suspicious by them alone: {len(rp['raised'])}"
                 + "".join(f"\n    {r['new']} (against {r['old']}): {', '.join(r['news'])}, {r['points']} points"
                           for r in rp["raised"][:10]))
        L.append("  findings by rule (pairs): " + (", ".join(f"{k} {v}" for k, v in rp["rules"].items()) or "none"))
        if rp["errors"]:
            L.append(f"  errors: {len(rp['errors'])}: " + ", ".join(r["new"] for r in rp["errors"][:5]))

    g = doc["guarddog"]
    if g.get("available"):
        s = g["sample"]
        sens = g["suspicious_or_higher"]
        report_block(
            f"GuardDog {g.get('version', '')} — sample (seed {s['seed']}): {s['malicious']} malicious, "
            f"{s['benign_sdist']} benign sdists, {s['benign_wheel']} benign wheels",
            g["figures"], gres, "threat rule ids behind GuardDog's risks",
            "wall time of one `guarddog pypi scan` process, sequential", L,
            extra_rates={'at "suspicious or higher"': (sens["detection"], sens["fp"]["sdist"],
                                                       sens["fp"]["wheel"])},
        )
        L.append(f"  labels: malicious {g['labels']['malicious']}, benign {g['labels']['benign']}")
        L.append(f"  CPU time per package (user+sys of the process, less sensitive to a busy machine): "
                 f"median {fmt_ms(g['cpu_ms']['median_ms'])}, p95 {fmt_ms(g['cpu_ms']['p95_ms'])}")
        L.append(f"  fixed cost per GuardDog process (interpreter, imports, rule compilation; "
                 f"median of 3 scans of a 3-file synthetic sdist): {fmt_ms(g['fixed_cost_ms'])}"
                 f"; sandbox {'on' if g.get('sandbox') else 'off'}")
    else:
        L.append("")
        L.append(f"GuardDog: not measured — {g.get('skipped')}")

    if pal.get("available") and pal.get("guarddog_sample"):
        report_block("Palisade on the same sample (apples to apples)", pal["guarddog_sample"], pres,
                     "rule id", "duration_ms", L, rule_rows=10, list_misses=10)

    sp = doc["speed"]
    L.append("")
    L.append("Speed")
    L.append("-----")
    if sp.get("ratio"):
        L.append(f"  GuardDog median {fmt_ms(sp['guarddog_median_ms'])} / Palisade median "
                 f"{fmt_ms(sp['palisade_median_ms_same_sample'])} (same sample) = "
                 f"{sp['ratio']:.0f}x   target >= {TARGETS['speedup_min']:.0f}x: "
                 f"{verdict_word(sp['target_met'])}")
        L.append(f"  net of GuardDog's fixed per-process cost: {sp['ratio_net_of_guarddog_startup']:.0f}x "
                 "(for information; Palisade's duration_ms excludes its own process start, "
                 "shared by a batch)")
    else:
        L.append("  n/a (needs both scanners)")
    if doc["notes"]:
        L.append("")
        L.append("Notes")
        L.append("-----")
        for n in doc["notes"]:
            L.append(f"  - {n}")
    return L


if __name__ == "__main__":
    sys.exit(main())
