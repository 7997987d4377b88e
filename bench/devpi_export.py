"""Write a devpi-server export directory (dumpversion 2, the format
`devpi-export` of devpi-server 6.x writes) for a list of wheels, so that
`devpi-import` can bulk-load devpi far faster than uploading at 3-4 files/s.

Layout (as produced by a real `devpi-export` of an index filled by uploads):
  EXPORT/dataindex.json
  EXPORT/<user>/<index>/<project>/<version>/<filename>
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from wheels import METADATA_VERSION, Wheel

_EMPTY_META = {
    "home_page": "",
    "author": "",
    "author_email": "",
    "maintainer": "",
    "maintainer_email": "",
    "description": "",
    "keywords": "",
    "platform": [],
    "classifiers": [],
    "download_url": "",
    "supported_platform": [],
    "comment": "",
    "provides": [],
    "requires": [],
    "obsoletes": [],
    "project_urls": [],
    "provides_dist": [],
    "obsoletes_dist": [],
    "requires_dist": [],
    "requires_external": [],
    "provides_extras": [],
    "dynamic": [],
    "license_expression": "",
    "license_file": [],
}


def write_export(
    dest: Path,
    wheels: list[Wheel],
    *,
    user: str,
    pwhash: str,
    index: str,
    devpi_version: str,
    python_version: list,
) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    now = time.gmtime()
    when = list(now[:6])
    last_modified = time.strftime("%a, %d %b %Y %H:%M:%S GMT", now)
    stage = f"{user}/{index}"
    projects: dict = {}
    files = []
    for w in wheels:
        meta = {
            "name": w.name,
            "version": w.version,
            "metadata_version": METADATA_VERSION,
            "summary": f"Palisade benchmark package {w.index:05d}",
            "license": "Apache-2.0",
            "requires_python": ">=3.8",
            "description_content_type": "text/plain",
            **_EMPTY_META,
        }
        projects.setdefault(w.name, {})[w.version] = meta
        relpath = f"{stage}/{w.name}/{w.version}/{w.filename}"
        target = dest / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(w.path, target)
        except OSError:
            shutil.copyfile(w.path, target)
        files.append(
            {
                "version": w.version,
                "entrymapping": {
                    "last_modified": last_modified,
                    "hash_spec": f"sha256={w.sha256}",
                    "hashes": {"sha256": w.sha256},
                    "project": w.name,
                    "version": w.version,
                },
                "log": [{"what": "upload", "who": user, "when": when, "dst": stage}],
                "type": "releasefile",
                "projectname": w.name,
                "relpath": relpath,
            }
        )
    data = {
        "users": {
            user: {
                "pwhash": pwhash,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", now),
                "username": user,
            }
        },
        "indexes": {
            stage: {
                "indexconfig": {
                    "acl_toxresult_upload": [":ANONYMOUS:"],
                    "acl_upload": [user],
                    "volatile": True,
                    "mirror_whitelist": [],
                    "bases": [],
                    "mirror_whitelist_inheritance": "intersection",
                    "type": "stage",
                },
                "projects": projects,
                "files": files,
            }
        },
        "dumpversion": "2",
        "pythonversion": python_version,
        "devpi_server": devpi_version,
    }
    (dest / "dataindex.json").write_text(json.dumps(data))
