"""Generate small, valid, deterministic wheels for the benchmark.

Project i (1-based) is ``benchpkg-NNNNN`` (5 digits); each project has the
versions in VERSIONS.  Wheel filename: ``benchpkg_NNNNN-VER-py3-none-any.whl``
containing ``benchpkg_NNNNN/__init__.py`` and a ``.dist-info`` folder with
METADATA (Metadata-Version 2.1), WHEEL and RECORD.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

VERSIONS = ("1.0.0", "1.1.0", "2.0.0")
METADATA_VERSION = "2.1"
_DATE = (2024, 1, 1, 0, 0, 0)
# Bump when the wheel layout changes so a stale cache is regenerated.
LAYOUT = "1"


def project_name(i: int) -> str:
    return f"benchpkg-{i:05d}"


def dist_name(i: int) -> str:
    return f"benchpkg_{i:05d}"


def wheel_filename(i: int, version: str) -> str:
    return f"{dist_name(i)}-{version}-py3-none-any.whl"


@dataclass(frozen=True)
class Wheel:
    index: int  # project number, 1-based
    name: str  # normalized project name
    version: str
    filename: str
    path: Path
    sha256: str
    size: int


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def wheel_bytes(i: int, version: str) -> bytes:
    name = project_name(i)
    dist = dist_name(i)
    info = f"{dist}-{version}.dist-info"
    files = [
        (f"{dist}/__init__.py", f'__version__ = "{version}"\n'.encode()),
        (
            f"{info}/METADATA",
            (
                f"Metadata-Version: {METADATA_VERSION}\n"
                f"Name: {name}\n"
                f"Version: {version}\n"
                f"Summary: Palisade benchmark package {i:05d}\n"
                "License: Apache-2.0\n"
                "Requires-Python: >=3.8\n"
                "Description-Content-Type: text/plain\n"
                "\n"
                f"Benchmark fixture {name} {version}.\n"
            ).encode(),
        ),
        (
            f"{info}/WHEEL",
            (
                "Wheel-Version: 1.0\n"
                "Generator: palisade-bench\n"
                "Root-Is-Purelib: true\n"
                "Tag: py3-none-any\n"
            ).encode(),
        ),
    ]
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d in files)
    record += f"{info}/RECORD,,\n"
    files.append((f"{info}/RECORD", record.encode()))

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path, data in files:
            zi = zipfile.ZipInfo(path, date_time=_DATE)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, data)
    return buf.getvalue()


def ensure_wheels(out_dir: Path, n_projects: int, log=print) -> list[Wheel]:
    """Create (or reuse) wheels for projects 1..n_projects; return them in
    upload order (project-major, versions ascending)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = out_dir / ".layout"
    if not stamp.exists() or stamp.read_text() != LAYOUT:
        for f in out_dir.glob("*.whl"):
            f.unlink()
        stamp.write_text(LAYOUT)
    wheels: list[Wheel] = []
    created = 0
    for i in range(1, n_projects + 1):
        for v in VERSIONS:
            fn = wheel_filename(i, v)
            p = out_dir / fn
            if p.exists():
                data = p.read_bytes()
            else:
                data = wheel_bytes(i, v)
                tmp = p.with_suffix(".tmp")
                tmp.write_bytes(data)
                os.replace(tmp, p)
                created += 1
            wheels.append(
                Wheel(
                    index=i,
                    name=project_name(i),
                    version=v,
                    filename=fn,
                    path=p,
                    sha256=hashlib.sha256(data).hexdigest(),
                    size=len(data),
                )
            )
    if created:
        log(f"  generated {created} wheels in {out_dir}")
    return wheels


if __name__ == "__main__":  # small self-check
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        ws = ensure_wheels(Path(d), 2)
        for w in ws:
            with zipfile.ZipFile(w.path) as zf:
                assert zf.testzip() is None
                names = zf.namelist()
                meta = zf.read(f"{dist_name(w.index)}-{w.version}.dist-info/METADATA").decode()
                assert f"Name: {w.name}\n" in meta and f"Version: {w.version}\n" in meta
            print(w.filename, w.size, names, file=sys.stderr)
