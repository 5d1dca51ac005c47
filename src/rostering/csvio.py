"""Writing vendor CSV files: RFC 4180, UTF-8 without BOM, CRLF, deterministic bytes, owner-only permissions.

pyarrow's writer is ~20x faster than ``DataFrame.to_csv`` on the largest files; it quotes every string value (valid
RFC 4180) and writes nulls as empty unquoted fields. The header line is written by us, unquoted, because several
importers compare it byte for byte.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

EOL = "\r\n"
PRIVATE_FILE = 0o600


@dataclass(frozen=True)
class WrittenFile:
    path: str
    rows: int
    size: int
    sha256: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_csv(frame: pd.DataFrame, path: Path, header: Sequence[str], *, quoting: str = "needed") -> WrittenFile:
    """Write ``frame[header]`` (all values as strings, nulls empty) to ``path``.

    ``quoting="none"`` writes no quotes at all and refuses (raises) a value that would need them.
    """
    for name in header:
        if any(ch in name for ch in ',"\r\n'):
            raise ValueError(f"header name needs quoting, refusing: {name!r}")
    table = pa.Table.from_pandas(frame[list(header)].astype("string"), preserve_index=False)
    # strings stay as they are (pandas holds large_string: casting would copy every value); anything else -> string
    table = table.cast(pa.schema([(name, table.schema.field(name).type if pa.types.is_large_string(
        table.schema.field(name).type) else pa.string()) for name in header]))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as handle:
        handle.write((",".join(header) + EOL).encode("utf-8"))
        if table.num_rows:
            pacsv.write_csv(table, handle, pacsv.WriteOptions(include_header=False, eol=EOL, quoting_style=quoting))
    os.chmod(path, PRIVATE_FILE)
    return WrittenFile(str(path), table.num_rows, path.stat().st_size, sha256_of(path))


def write_rows(rows: Sequence[Sequence[str]], path: Path, header: Sequence[str]) -> WrittenFile:
    """Small files (a manifest): same conventions as ``write_csv``."""
    return write_csv(pd.DataFrame(list(rows), columns=list(header), dtype="string"), path, header)
