"""Differential tests of the archive walker: for every archive, what Palisade judges (`palisade
inspect`: each file under each path it will have once extracted, with its digest) is exactly
what Python's `tarfile` (with the `data` filter) and `zipfile` extract, or Palisade refuses the
archive. The two High findings of the hostile-input review were such differentials: a linked
`setup.py` and a second gzip member that only the installers saw.

The hostile fixtures and the generated ones come from `archive_oracle.py`; the longer run is
`fuzz/differential.py`. Nothing is installed or run: archives are only extracted."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import archive_oracle as oracle

FIXTURES = Path(os.environ.get("PALISADE_FIXTURES", Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "pep740"))
if not FIXTURES.is_dir():
    FIXTURES = Path("/work/shared/fixtures/pep740")

# Seeds of generated archives checked in every run (about 10 s); fuzz/differential.py runs more.
GENERATED = int(os.environ.get("PALISADE_DIFF_CASES", "400"))


def _write(tmp_path: Path, archives: dict[str, bytes]) -> list[Path]:
    paths = []
    for name, data in archives.items():
        p = tmp_path / name
        p.write_bytes(data)
        paths.append(p)
    return paths


def test_hostile_archives_mean_to_palisade_what_they_mean_to_installers(palisade_bin, tmp_path):
    files = _write(tmp_path, oracle.hostile_archives())
    problems, counts = oracle.check_all(palisade_bin, files)
    assert problems == [], "\n".join(problems)
    # The review's attacks are refused outright, or judged under the path they extract to.
    views = {p.name: v for p, v in zip(files, oracle.palisade_views(palisade_bin, files))}
    stage2 = hashlib.sha256(oracle.STAGE2).hexdigest()
    for name in ("setup-symlink-to-notes.tar.gz", "setup-hardlink-to-notes.tar.gz"):
        listed = oracle.palisade_listing(views[name])
        assert listed.get("demo-1.0/setup.py", (0, ""))[1] == stage2, f"{name}: {views[name]}"
    for name in ("setup-then-symlink-same-name.tar.gz", "link-chain-up.tar.gz", "gzip-second-member-replaces-setup.tar.gz",
                 "archive-after-end-marker.tar.gz", "zip-local-header-pth.whl", "zip-unicode-path.whl",
                 "pax-global-path.tar.gz", "pax-repeated-path.tar.gz", "case-collision.tar.gz",
                 "folder-with-data-hides-setup.tar.gz", "symlink-with-data-hides-setup.tar.gz", "pax-path-and-gnu-long-name.tar.gz",
                 "gnu-prefix-field.tar.gz", "zip-end-record-undercounts.whl", "gzip-carrying-a-wheel.whl"):
        assert not views[name]["complete"], f"{name} should be refused: {views[name]}"
    listed = oracle.palisade_listing(views["gzip-second-member-adds-module.tar.gz"])
    assert listed.get("demo-1.0/evil.py", (0, ""))[1] == stage2
    assert counts["agree"] >= 10, counts


def test_real_distributions_are_read_as_installers_read_them(palisade_bin):
    files = sorted(p for p in FIXTURES.iterdir() if p.name.endswith((".whl", ".tar.gz")))
    assert files, f"no distributions in {FIXTURES}"
    problems, counts = oracle.check_all(palisade_bin, files)
    assert problems == [], "\n".join(problems)
    # Real packages are neither ambiguous nor refused.
    assert counts["agree"] == len(files), counts


def test_generated_archives_mean_to_palisade_what_they_mean_to_installers(palisade_bin, tmp_path):
    archives = {}
    for seed in range(GENERATED):
        name, data = oracle.Generator(seed).archive()
        archives[f"{seed}-{name}"] = data
    problems, counts = oracle.check_all(palisade_bin, _write(tmp_path, archives))
    assert problems == [], "\n".join(problems)
    # The generator must reach both outcomes, or it tests nothing.
    assert counts["agree"] > GENERATED // 10 and counts["palisade_refused"] + counts["both_refused"] > GENERATED // 10, counts


def test_oracle_notices_a_disagreement(tmp_path):
    """The comparison itself: a listing that differs from the extraction is reported."""
    path = tmp_path / "demo-1.0.tar.gz"
    path.write_bytes(oracle.hostile_archives()["setup-symlink-to-notes.tar.gz"])
    py = oracle.python_view(path)
    assert py is not None and "demo-1.0/setup.py" in py
    fake = {"complete": True, "members": [{"path": p, "size": s, "sha256": h} for p, (s, h) in py.items() if p != "demo-1.0/setup.py"]}
    assert oracle.compare(py, fake) is not None
    assert oracle.compare(py, {**fake, "complete": False}) is None
