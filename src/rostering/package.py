"""Deterministic zip packages: files at the root, DEFLATE, fixed timestamps and order -> byte-identical reruns."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Sequence

from rostering.csvio import PRIVATE_FILE, WrittenFile, sha256_of

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip's epoch: the package bytes depend on the content only


def zip_files(files: Sequence[Path], target: Path) -> WrittenFile:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as handle, zipfile.ZipFile(handle, "w") as archive:
        for path in sorted(files, key=lambda p: p.name):
            info = zipfile.ZipInfo(path.name, date_time=_FIXED_TIME)  # bare name: no enclosing folder
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with open(path, "rb") as source, archive.open(info, "w") as sink:
                for block in iter(lambda: source.read(1 << 20), b""):
                    sink.write(block)
    return WrittenFile(str(target), len(files), target.stat().st_size, sha256_of(target))
