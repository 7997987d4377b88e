#!/usr/bin/env python3
"""Memory of the server under an unauthenticated slow-body flood (issue 12, item 6).

Starts the real binary on a fresh data dir per run, waits until its memory is steady (the scanner
compiles its rules in the background at start), then opens N connections to one endpoint, each
sending a request whose body (2 MB by default) is sent all but its last byte and held back. It
prints the server's resident memory (VmRSS from /proc/<pid>/status) before, at the peak while the
connections are held, and a few seconds after they close, with what the connections were
answered.

Attacks (--attacks): `declared` announces the body in Content-Length (the issue's attack);
`chunked` sends it with Transfer-Encoding: chunked, so the size is only known as it arrives;
`headers` sends a long request head (30 KB) without its final blank line.

    cargo build -p palisade
    python3 bench/hostile_memory.py                                   # target/debug/palisade
    python3 bench/hostile_memory.py --bin /path/to/other/palisade     # e.g. an older build
    python3 bench/hostile_memory.py --routes login --attacks declared --connections 100
    python3 bench/hostile_memory.py --smoke     # one tiny run, ~3 s: does the harness still work?

Stdlib only; all traffic goes to 127.0.0.1. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

HOST = "127.0.0.1"
ROUTES = {
    "mint-token": "/_/oidc/mint-token",
    "disclose-token": "/_/secrets/disclose-token",
    "login": "/api/login",
}
ATTACKS = ("declared", "chunked", "headers")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server not ready")


def wait_steady(pid: int, window: float = 3.0, tolerance_mib: float = 1.0, timeout: float = 120) -> float:
    """RSS once it has moved less than `tolerance_mib` over `window` seconds."""
    poll = 0.25
    deadline = time.monotonic() + timeout
    samples: list[tuple[float, float]] = []
    while time.monotonic() < deadline:
        now = time.monotonic()
        samples.append((now, rss_mib(pid)))
        samples = [s for s in samples if now - s[0] <= window]
        # The kept samples span the window less at most one poll interval (a fixed share of a
        # short window may never be reached, as the polls drift).
        if now - samples[0][0] >= window - poll:
            values = [v for _, v in samples]
            if max(values) - min(values) <= tolerance_mib:
                return values[-1]
        time.sleep(poll)
    return rss_mib(pid)


class Attacker(threading.Thread):
    """One connection: send the hostile request, keep the socket open until told to close, and
    record what the server did (its status line, or how the connection ended)."""

    def __init__(self, port: int, path: str, attack: str, body_bytes: int, release: threading.Event):
        super().__init__(daemon=True)
        self.port, self.path, self.attack, self.body_bytes, self.release = port, path, attack, body_bytes, release
        self.outcome = "?"
        self.sent = threading.Event()

    def run(self) -> None:
        sock = None
        try:
            sock = socket.create_connection((HOST, self.port), timeout=30)
            sock.settimeout(30)
            self.send(sock)
            self.outcome = "held (no answer)"
        except OSError as e:
            self.outcome = f"send failed: {type(e).__name__}"
        finally:
            self.sent.set()
        if sock is None:
            return
        # Peek at an answer without blocking the hold.
        try:
            sock.settimeout(0.5)
            data = sock.recv(200)
            if data:
                self.outcome = data.split(b"\r\n", 1)[0].decode(errors="replace")
            else:
                self.outcome = "closed without an answer"
        except socket.timeout:
            pass
        except OSError as e:
            self.outcome = f"reset ({type(e).__name__})"
        self.release.wait(timeout=600)
        sock.close()

    def send(self, sock: socket.socket) -> None:
        head = f"POST {self.path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        chunk = b"x" * 65536
        if self.attack == "declared":
            sock.sendall(f"{head}Content-Length: {self.body_bytes}\r\n\r\n".encode())
            left = self.body_bytes - 1
            while left > 0:
                n = min(left, len(chunk))
                sock.sendall(chunk[:n])
                left -= n
        elif self.attack == "chunked":
            sock.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
            left = self.body_bytes - 1
            while left > 0:
                n = min(left, len(chunk))
                sock.sendall(f"{n:x}\r\n".encode() + chunk[:n] + b"\r\n")
                left -= n
            # the terminating 0-length chunk is held back
        elif self.attack == "headers":
            sock.sendall(head.encode() + b"".join(f"X-Pad-{i}: {'a' * 990}\r\n".encode() for i in range(30)))
            # the blank line that ends the head is held back
        else:
            raise ValueError(self.attack)


def run_one(binary: Path, route: str, attack: str, connections: int, body_bytes: int, hold: float,
            steady_window: float = 3.0, after_wait: float = 3.0) -> dict:
    root = Path(tempfile.mkdtemp(prefix="palisade-hostile-"))
    port = free_port()
    log = open(root / "server.log", "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALISADE_")}
    env["PALISADE_LOG"] = "warn"
    proc = subprocess.Popen(
        [str(binary), "--data-dir", str(root / "data"), "serve", "--listen", f"{HOST}:{port}"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
    )
    try:
        wait_ready(port, proc)
        before = wait_steady(proc.pid, window=steady_window)
        release = threading.Event()
        attackers = [Attacker(port, ROUTES[route], attack, body_bytes, release) for _ in range(connections)]
        started = time.monotonic()
        for a in attackers:
            a.start()
        for a in attackers:
            a.sent.wait(timeout=120)
        sent_in = time.monotonic() - started
        peak = rss_mib(proc.pid)
        hold_until = time.monotonic() + hold
        while time.monotonic() < hold_until:
            peak = max(peak, rss_mib(proc.pid))
            time.sleep(0.2)
        outcomes = Counter(a.outcome for a in attackers)
        release.set()
        for a in attackers:
            a.join(timeout=10)
        time.sleep(after_wait)
        after = rss_mib(proc.pid)
        return {
            "route": route, "attack": attack, "before": before, "peak": peak, "after": after,
            "sent_s": sent_in, "outcomes": dict(outcomes), "alive": proc.poll() is None,
        }
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_bin = Path(os.environ.get("CARGO_TARGET_DIR", "target")) / "debug" / "palisade"
    ap.add_argument("--bin", type=Path, default=Path(os.environ.get("PALISADE_BIN", default_bin)))
    ap.add_argument("--connections", type=int, default=500)
    ap.add_argument("--body-bytes", type=int, default=2_000_000)
    ap.add_argument("--hold", type=float, default=5.0, help="seconds the connections are held after sending")
    ap.add_argument("--routes", default=",".join(ROUTES), help=f"comma-separated: {', '.join(ROUTES)}")
    ap.add_argument("--attacks", default=",".join(ATTACKS), help=f"comma-separated: {', '.join(ATTACKS)}")
    ap.add_argument("--smoke", action="store_true",
                    help="login, declared, 5 connections x 20 kB, 0.5 s hold and 1 s waits: checks that the "
                         "harness runs; the figures mean nothing")
    args = ap.parse_args()
    steady_window, after_wait = 3.0, 3.0
    if args.smoke:
        args.routes, args.attacks = "login", "declared"
        args.connections, args.body_bytes, args.hold = 5, 20_000, 0.5
        steady_window, after_wait = 1.0, 1.0
    if not args.bin.exists():
        print(f"no binary at {args.bin}; build it or pass --bin", file=sys.stderr)
        return 2
    # Both ends of every connection are in this machine's file table: the client's here, the
    # server's in the child, which inherits the raised limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.connections + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < 2 * args.connections + 64:
        print(f"warning: RLIMIT_NOFILE is {want}, too low for {args.connections} connections", file=sys.stderr)

    print(f"binary: {args.bin}")
    print(f"{args.connections} connections x {args.body_bytes:,}-byte body (last byte held back), held {args.hold:g} s")
    print()
    print(f"{'route':<15} {'attack':<9} {'before':>8} {'peak':>8} {'after':>8} {'growth':>8}  answers")
    for route in args.routes.split(","):
        for attack in args.attacks.split(","):
            r = run_one(args.bin, route.strip(), attack.strip(), args.connections, args.body_bytes, args.hold,
                        steady_window, after_wait)
            answers = ", ".join(f"{n} {k}" for k, n in sorted(r["outcomes"].items(), key=lambda kv: -kv[1]))
            if not r["alive"]:
                answers += " [SERVER DIED]"
            print(
                f"{r['route']:<15} {r['attack']:<9} {r['before']:>6.0f}Mi {r['peak']:>6.0f}Mi {r['after']:>6.0f}Mi "
                f"{r['peak'] - r['before']:>+6.0f}Mi  {answers}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
