"""Process, port, HTTP and wrk helpers for the benchmark harness.  All
traffic goes to 127.0.0.1; every loop is bounded in count and in time."""

from __future__ import annotations

import http.client
import json
import os
import queue
import random
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_get(
    port: int, path: str, headers: dict | None = None, timeout: float = 30.0
) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()


def http_json(
    port: int, method: str, path: str, body: dict, headers: dict | None = None, timeout: float = 30.0
) -> tuple[int, dict]:
    """Send a JSON body; return the status and the decoded JSON answer ({} when it is not JSON)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        raw = r.read()
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, {"raw": raw[:300].decode(errors="replace")}
    finally:
        conn.close()


def fetch_many(
    port: int,
    paths: list[str],
    headers: dict | None = None,
    concurrency: int = 4,
    deadline_s: float = 120.0,
) -> dict[str, bytes]:
    """GET each path once over keep-alive connections; return path -> body
    for the 200 answers.  Stops at the deadline."""
    q: queue.SimpleQueue = queue.SimpleQueue()
    for p in paths:
        q.put(p)
    out: dict[str, bytes] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + deadline_s

    def worker() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        try:
            while time.monotonic() < stop_at:
                try:
                    p = q.get_nowait()
                except queue.Empty:
                    return
                for attempt in range(2):
                    try:
                        conn.request("GET", p, headers=headers or {})
                        r = conn.getresponse()
                        body = r.read()
                        if r.status == 200:
                            with lock:
                                out[p] = body
                        break
                    except (OSError, http.client.HTTPException):
                        conn.close()
        finally:
            conn.close()

    ts = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=max(1.0, stop_at - time.monotonic() + 35))
    return out


def idle_busy_pct(seconds: float = 1.0) -> float:
    """CPU busy % of the whole machine over `seconds` while the harness
    itself is idle: a noise indicator (other jobs running here)."""

    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v), idle

    t1, i1 = snap()
    time.sleep(seconds)
    t2, i2 = snap()
    return 100.0 * (1 - (i2 - i1) / (t2 - t1)) if t2 > t1 else 0.0


def _children(pid: int) -> list[int]:
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            kids.append(int(d))
    return kids


def vmrss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _tree(pid: int) -> list[int]:
    seen, todo = [pid], _children(pid)
    while todo and len(seen) < 1000:
        c = todo.pop()
        if c not in seen:
            seen.append(c)
            todo.extend(_children(c))
    return seen


def tree_cpu_s(pid: int) -> float:
    """User+system CPU seconds used so far by the process and its children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def wait_quiet(pid: int, max_s: float = 120.0, window_s: float = 1.0, cores: float = 0.05) -> float:
    """Wait until the server uses < `cores` CPU over a `window_s` window (no
    background work left from loading); return the seconds waited."""
    t0 = time.monotonic()
    last = tree_cpu_s(pid)
    while time.monotonic() - t0 < max_s:
        time.sleep(window_s)
        now = tree_cpu_s(pid)
        if (now - last) / window_s < cores:
            return time.monotonic() - t0 - window_s
        last = now
    return time.monotonic() - t0


def tree_rss_kib(pid: int) -> dict:
    """VmRSS of the process and the sum over it and its descendants."""
    main = vmrss_kib(pid)
    total = main or 0
    seen = {pid}
    todo = _children(pid)
    n = 1
    while todo and n < 1000:
        c = todo.pop()
        if c in seen:
            continue
        seen.add(c)
        n += 1
        total += vmrss_kib(c) or 0
        todo.extend(_children(c))
    return {"main_kib": main, "tree_kib": total, "processes": len(seen)}


class ServerProcess:
    """A server we start (in its own session) and stop by its pid."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict | None = None, cwd=None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.popen: subprocess.Popen | None = None
        self.t_exec = 0.0

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        log.write(f"\n=== exec {' '.join(self.argv)}\n".encode())
        log.flush()
        self.t_exec = time.monotonic()
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()

    def wait_ready(self, port: int, path: str, timeout_s: float = 180.0, poll_s: float = 0.002) -> float:
        """Poll GET path until 200; return seconds since exec."""
        deadline = self.t_exec + timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode} before it was ready; "
                    f"log tail:\n{self.log_tail()}"
                )
            try:
                conn = http.client.HTTPConnection(HOST, port, timeout=max(1.0, deadline - time.monotonic()))
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                conn.close()
                if r.status == 200:
                    return time.monotonic() - self.t_exec
                last = f"HTTP {r.status}"
            except (OSError, http.client.HTTPException) as e:
                last = type(e).__name__
            time.sleep(poll_s)
        raise RuntimeError(f"{self.name} not ready on :{port}{path} after {timeout_s}s ({last}); log tail:\n{self.log_tail()}")

    def log_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def rss(self) -> dict:
        return tree_rss_kib(self.pid)

    def stop(self, timeout_s: float = 20.0) -> None:
        p = self.popen
        if p is None or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)  # the group this process leads (start_new_session)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=10)


@dataclass
class WrkResult:
    ok: bool
    rps: float = 0.0  # successful (2xx/3xx) responses per second
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    errors: dict | None = None
    bytes_per_req: float = 0.0
    error: str = ""

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "rps": round(self.rps, 1),
            "p50_ms": None if self.p50_ms is None else round(self.p50_ms, 3),
            "p99_ms": None if self.p99_ms is None else round(self.p99_ms, 3),
            "requests": self.requests,
            "errors": self.errors or {},
            "bytes_per_req": round(self.bytes_per_req, 1),
            "error": self.error,
        }


def run_wrk(
    port: int,
    path: str,
    *,
    connections: int,
    duration_s: float,
    lua: Path,
    accept: str | None = None,
    paths_file: Path | None = None,
    threads: int = 2,
    timeout_s: float = 2.0,
) -> WrkResult:
    env = dict(os.environ)
    env["BENCH_ACCEPT"] = accept or ""
    env["BENCH_PATHS"] = str(paths_file) if paths_file else ""
    argv = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        f"{max(1, round(timeout_s))}s",
        "-s",
        str(lua),
        f"http://{HOST}:{port}{path}",
    ]
    try:
        cp = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration_s + timeout_s + 60)
    except subprocess.TimeoutExpired:
        return WrkResult(ok=False, error="wrk did not finish in time")
    line = next((l for l in cp.stdout.splitlines() if l.startswith("BENCHJSON ")), None)
    if cp.returncode != 0 or line is None:
        return WrkResult(ok=False, error=f"wrk rc={cp.returncode}: {cp.stderr.strip()[:300]} {cp.stdout[-300:]}")
    d = json.loads(line[len("BENCHJSON ") :])
    secs = d["duration_us"] / 1e6
    good = max(0, d["requests"] - d["err_status"])
    errors = {k[4:]: v for k, v in d.items() if k.startswith("err_") and v}
    # wrk keeps no latency for responses that came after --timeout, but
    # counts them in requests and in errors.timeout.
    have_latency = d["requests"] - d["err_timeout"] > 0
    return WrkResult(
        ok=True,
        rps=good / secs if secs > 0 else 0.0,
        p50_ms=d["p50_us"] / 1000 if have_latency else None,
        p99_ms=d["p99_us"] / 1000 if have_latency else None,
        requests=d["requests"],
        errors=errors,
        bytes_per_req=d["bytes"] / d["requests"] if d["requests"] else 0.0,
    )


def run_pyload(
    port: int,
    path: str,
    *,
    connections: int,
    duration_s: float,
    accept: str | None = None,
    paths_file: Path | None = None,
    timeout_s: float = 2.0,
) -> WrkResult:
    """A stand-in for wrk where it is not installed (smoke runs only): `connections` threads, each
    a keep-alive http.client connection sending GETs for `duration_s`, with the same result shape
    as `run_wrk`. Python's own cost per request caps the rate far below what the servers here
    can do, so its figures show that an endpoint answers, not how fast."""
    paths = [l for l in paths_file.read_text().splitlines() if l] if paths_file else [path]
    headers = {"Accept": accept} if accept else {}
    lock = threading.Lock()
    latencies: list[float] = []
    counts = {"requests": 0, "good": 0, "bytes": 0, "status": 0, "timeout": 0, "connect": 0, "read": 0}
    t0 = time.monotonic()
    stop_at = t0 + duration_s

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        mine: list[float] = []
        c = dict.fromkeys(counts, 0)
        conn = None
        while time.monotonic() < stop_at:
            p = rnd.choice(paths)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
                    try:
                        conn.connect()
                    except OSError:
                        c["connect"] += 1
                        conn = None
                        time.sleep(0.01)
                        continue
                t = time.perf_counter()
                conn.request("GET", p, headers=headers)
                r = conn.getresponse()
                body = r.read()
                mine.append(time.perf_counter() - t)
                c["requests"] += 1
                c["bytes"] += len(body)
                if r.status < 400:
                    c["good"] += 1
                else:
                    c["status"] += 1
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except TimeoutError:
                c["requests"] += 1
                c["timeout"] += 1
                conn.close()
                conn = None
            except (OSError, http.client.HTTPException):
                c["read"] += 1
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()
        with lock:
            latencies.extend(mine)
            for k, v in c.items():
                counts[k] += v

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=duration_s + timeout_s + 30)
    secs = time.monotonic() - t0
    if any(t.is_alive() for t in threads):
        return WrkResult(ok=False, error="the Python load loop did not finish in time")
    latencies.sort()

    def pct(q: float) -> float | None:
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return WrkResult(
        ok=True,
        rps=counts["good"] / secs if secs > 0 else 0.0,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        requests=counts["requests"],
        errors={k: counts[k] for k in ("status", "timeout", "connect", "read") if counts[k]},
        bytes_per_req=counts["bytes"] / counts["requests"] if counts["requests"] else 0.0,
    )
