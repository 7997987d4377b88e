#!/usr/bin/env python3
"""The pull-through mirror against devpi-server's PyPI mirror and against PyPI itself, in one run.

Installs a realistic requirements set (bench/mirror-requirements.txt: 30+ real packages and their
dependencies, wheels only) with `pip install` and `uv pip install`, each client with an empty
cache and an empty target every time:

- direct: from https://pypi.org/simple/;
- palisade cold: a fresh Palisade whose mirror points at PyPI (min_age 0, so it resolves what
  PyPI resolves), then warm: the same again, the mirror's cache now full;
- devpi cold and warm: the same with devpi-server's root/pypi mirror.

Runs are interleaved (direct, Palisade cold and warm, devpi cold and warm; again for each of
--runs, every mirror fresh each time), and medians are printed: wall times, Palisade's upstream
requests and bytes and the time its scanner took, and the ratios the issue sets: a warm install
through Palisade at least as fast as devpi's warm install, and a cold one adding under 5% over
going direct. PyPI's CDN and the shared machine are the noisiest part of the run (the same warm
install varies by 20% from one run to the next): compare medians of one run only.

    python3 bench/mirror.py                      # release binary, 1 run (~10 min with a fast link)
    python3 bench/mirror.py --runs 5 --clients pip
    PALISADE_BIN=/path/to/palisade python3 bench/mirror.py
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = HERE / ".venv-mirror"
# devpi-server as bench/requirements.txt pins it; pip and uv as the e2e tests pin them.
TOOLS = ["devpi-server==6.20.3", "pip==26.3", "uv==0.13.9"]
PYPI = "https://pypi.org/simple/"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def wait_ready(port: int, path: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            if get(port, path)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no answer on port {port} within {timeout} s")


def tools() -> Path:
    stamp = VENV / ".tools"
    if not (stamp.exists() and stamp.read_text() == " ".join(TOOLS)):
        log(f"creating {VENV} with {', '.join(TOOLS)}")
        shutil.rmtree(VENV, ignore_errors=True)
        venv.create(VENV, with_pip=True)
        subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", *TOOLS], check=True)
        stamp.write_text(" ".join(TOOLS))
    return VENV / "bin"


def palisade_binary() -> Path:
    env = os.environ.get("PALISADE_BIN")
    for p in ([Path(env)] if env else []) + [REPO / "target" / "release" / "palisade", Path("/var/cache/palisade-release/release/palisade")]:
        if p.is_file():
            return p
    for p in (REPO / "target" / "debug" / "palisade", Path("/var/cache/palisade-target/debug/palisade")):
        if p.is_file():
            log(f"WARNING: using the debug binary {p}: scanning is many times slower than in a release build")
            return p
    sys.exit("no palisade binary: cargo build --release -p palisade (or set PALISADE_BIN)")


class Palisade:
    name = "palisade"

    def __init__(self, work: Path) -> None:
        self.work = work

    def start(self) -> str:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        config = self.work / "palisade.toml"
        self.port = free_port()
        # As an operator sets it up: with its public URL, whose file links clients take as they are.
        config.write_text(
            f'public_url = "http://127.0.0.1:{self.port}"\n'
            '[mirror]\nmin_age = "0"\n[[mirror.upstreams]]\nname = "pypi"\n'
            f'url = "{PYPI}"\nfile_hosts = ["files.pythonhosted.org"]\n'
        )
        env = {**os.environ, "PALISADE_CONFIG": str(config), "PALISADE_LOG": "warn,palisade_core::scanning=info"}
        self.proc = subprocess.Popen(
            [str(palisade_binary()), "--data-dir", str(self.work / "data"), "serve", "--listen", f"127.0.0.1:{self.port}"],
            stdout=open(self.work / "server.log", "ab"), stderr=subprocess.STDOUT, env=env,
        )
        wait_ready(self.port, "/healthz", self.proc)
        # A server that has been up a while has its scanner built: the cold install measures
        # fetching and scanning, not the rules' compilation at start.
        deadline = time.monotonic() + 120
        while "malware scanner ready" not in (self.work / "server.log").read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise RuntimeError("the scanner was not ready within 120 s")
            time.sleep(0.1)
        self.cpu_at_start = self.cpu()
        return f"http://127.0.0.1:{self.port}/simple/"

    def cpu(self) -> float:
        """The server's CPU seconds so far (Linux), scanning included."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def figures(self) -> dict:
        status, body = get(self.port, "/metrics")
        out = {"server_cpu": round(self.cpu() - self.cpu_at_start, 2)}
        for line in body.decode().splitlines():
            for key in ("palisade_mirror_upstream_requests_total", "palisade_mirror_upstream_bytes_total", "palisade_mirror_scan_seconds_total",
                        "palisade_mirror_files_refused_total"):
                if line.startswith(key):
                    name = key.replace("palisade_mirror_", "").replace("_total", "")
                    out[name] = out.get(name, 0) + float(line.split()[-1])
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Devpi:
    name = "devpi"

    def __init__(self, work: Path, bin_dir: Path) -> None:
        self.work, self.bin = work, bin_dir

    def start(self) -> str:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        serverdir = self.work / "server"
        subprocess.run([str(self.bin / "devpi-init"), "--serverdir", str(serverdir)], check=True, capture_output=True)
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(self.bin / "devpi-server"), "--serverdir", str(serverdir), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=open(self.work / "server.log", "ab"), stderr=subprocess.STDOUT,
        )
        wait_ready(self.port, "/+api", self.proc)
        # devpi first loads PyPI's whole list of names (tens of MB), and until it has it, answers
        # "does not exist" to requests that wait more than 10 s: load it before the clock runs,
        # so that its cold install measures the packages, not that list.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if get(self.port, "/root/pypi/+simple/pip/")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(1)
        return f"http://127.0.0.1:{self.port}/root/pypi/+simple/"

    def figures(self) -> dict:
        return {}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def install(client: str, index: str, requirements: Path, bin_dir: Path, scratch: Path) -> tuple[float, int, float]:
    """One install with an empty client cache into an empty target: (seconds, packages, the
    client's own CPU seconds). pip is CPU-bound on this machine: its CPU time shows how much of
    the wall time is its own work, and how much waiting."""
    target = scratch / "target"
    shutil.rmtree(target, ignore_errors=True)
    python = str(bin_dir / "python")
    if client == "pip":
        cmd = [python, "-m", "pip", "install", "-q", "--no-cache-dir", "--disable-pip-version-check", "--only-binary", ":all:",
               "--index-url", index, "--target", str(target), "-r", str(requirements)]
    else:
        cmd = [str(bin_dir / "uv"), "pip", "install", "-q", "--no-cache", "--no-config", "--only-binary", ":all:", "--python", python,
               "--index-url", index, "--target", str(target), "-r", str(requirements)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    started, cpu = time.monotonic(), os.times()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    took, after = time.monotonic() - started, os.times()
    client_cpu = after.children_user - cpu.children_user + after.children_system - cpu.children_system
    if proc.returncode != 0:
        raise RuntimeError(f"{client} install from {index} failed:\n{proc.stdout}\n{proc.stderr}")
    return took, len(list(target.glob("*.dist-info"))), client_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requirements", type=Path, default=HERE / "mirror-requirements.txt")
    ap.add_argument("--runs", type=int, default=1, help="installs per cell (the median is shown)")
    ap.add_argument("--clients", default="pip,uv")
    ap.add_argument("--work", type=Path, default=HERE / "out" / "mirror")
    a = ap.parse_args()
    bin_dir = tools()
    clients = [c for c in a.clients.split(",") if c]
    scratch = a.work / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}

    def keep(key: str, seconds: float, packages: int = 0, **figures) -> None:
        r = results.setdefault(key, {"runs": [], "figures": []})
        r["runs"].append(seconds)
        r["seconds"] = statistics.median(r["runs"])
        if packages:
            r["packages"] = packages
        if figures:
            r["figures"].append(figures)
        log(f"{key:<24} {seconds:7.2f} s  {figures or ''}")

    # Runs are interleaved (direct, then each mirror cold and warm, again), each mirror fresh
    # every run, so that a drift of the machine or the network hits every column alike.
    for client in clients:
        for _ in range(a.runs):
            t, n, cpu = install(client, PYPI, a.requirements, bin_dir, scratch)
            keep(f"direct/{client}", t, n, client_cpu=round(cpu, 2))
            for server in (Palisade(a.work / "palisade"), Devpi(a.work / "devpi", bin_dir)):
                index = server.start()
                try:
                    t, n, cpu = install(client, index, a.requirements, bin_dir, scratch)  # cold: fills the mirror
                    keep(f"{server.name}-cold/{client}", t, n, client_cpu=round(cpu, 2), **server.figures())
                    t, n, cpu = install(client, index, a.requirements, bin_dir, scratch)
                    keep(f"{server.name}-warm/{client}", t, n, client_cpu=round(cpu, 2))
                finally:
                    server.stop()

    print("\nInstall of", sum(1 for line in a.requirements.read_text().splitlines() if line.strip() and not line.startswith("#")),
          "requirements (wheels, with dependencies), empty client caches; seconds")
    print(f"{'':<10}" + "".join(f"{c:>12}" for c in ("direct", "pal. cold", "pal. warm", "devpi cold", "devpi warm")))
    for client in clients:
        row = [results.get(f"{k}/{client}", {}).get("seconds") for k in ("direct", "palisade-cold", "palisade-warm", "devpi-cold", "devpi-warm")]
        print(f"{client:<10}" + "".join(f"{v:>12.2f}" if v is not None else f"{'-':>12}" for v in row))
        cpu = [results.get(f"{k}/{client}", {}).get("figures") for k in ("direct", "palisade-cold", "palisade-warm", "devpi-cold", "devpi-warm")]
        cpu = [statistics.median(f["client_cpu"] for f in fs) if fs else None for fs in cpu]
        print(f"{client + ' CPU':<10}" + "".join(f"{v:>12.2f}" if v is not None else f"{'-':>12}" for v in cpu))
    for client in clients:
        r = lambda k: results[f"{k}/{client}"]["seconds"]  # noqa: E731
        figures = results[f"palisade-cold/{client}"]["figures"]
        pal = {k: statistics.median(f.get(k, 0) for f in figures)
               for k in ("upstream_requests", "upstream_bytes", "scan_seconds", "server_cpu", "files_refused")}
        print(f"\n{client}: packages {results[f'direct/{client}']['packages']}; {a.runs} run(s), medians; Palisade cold: "
              f"{pal['upstream_requests']:.0f} upstream requests, {pal['upstream_bytes'] / 1e6:.1f} MB, "
              f"{pal['server_cpu']:.1f} s of CPU (scans {pal['scan_seconds']:.1f} s from start to end, read-ahead ones at low priority), "
              f"{pal['files_refused']:.0f} refused")
        print(f"  warm: Palisade / devpi = {r('palisade-warm') / r('devpi-warm'):.2f}x the time (target <= 1.00)")
        print(f"  cold: Palisade adds {100 * (r('palisade-cold') / r('direct') - 1):+.1f}% over direct (target < +5%); "
              f"devpi adds {100 * (r('devpi-cold') / r('direct') - 1):+.1f}%")
    out = a.work / "results.json"
    out.write_text(json.dumps(results, indent=2))
    log(f"figures in {out}")


if __name__ == "__main__":
    main()
