"""The output folder of a sharded inference run, whatever engine computes it: the input images
split into shards of consecutive sorted paths, one output file per shard (`part-00000.csv`,
`.json` or `.parquet`, plus `part-00000.errors.csv` when some files did not decode), each
written atomically once its shard is complete; `_RUN.json`, what the run is (model, options,
the image listing), written before any shard, so a rerun resumes only the same run; and
`_SUCCESS`, the manifest, written last.

A part file holds the rows of `aq-infer --format` for its shard's readable images, in path
order: the part files' rows, concatenated in part order, are the single-machine output's rows.
A rerun trusts no file it did not just check: a part file must hold exactly its shard's rows."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import AqError
from ..files import write_atomic_bytes
from ..runtime.predict import RecordWriter, flat_columns, flat_row

RUN_FILE, MANIFEST = "_RUN.json", "_SUCCESS"
RUN_FORMAT, RUN_VERSION = "aq-infer-run", 1
FORMATS = ("csv", "json", "parquet")
MAX_META = 16 << 20  # bytes of a _RUN.json or _SUCCESS this reader accepts


@dataclass(frozen=True)
class Plan:
    """A run: its images (sorted, as listed), shard size, and what defines its output."""
    paths: tuple[str, ...]
    shard_size: int
    spec: dict[str, Any]  # model, kernels, top_k, output_format...: a rerun must match it

    @property
    def shards(self) -> int:
        return -(-len(self.paths) // self.shard_size)

    def shard(self, k: int) -> tuple[str, ...]:
        return self.paths[k * self.shard_size:(k + 1) * self.shard_size]

    def part(self, out: Path, k: int) -> Path:
        return out / f"part-{k:05d}.{self.spec['output_format']}"

    def run_record(self) -> dict[str, Any]:
        listing = hashlib.sha256("\n".join(self.paths).encode()).hexdigest()
        return {**self.spec, "shard_size": self.shard_size, "images": len(self.paths),
                "listing": listing, "format": RUN_FORMAT, "version": RUN_VERSION}


def errors_path(part: Path) -> Path:
    return part.with_name(part.name.split(".")[0] + ".errors.csv")


def read_meta(path: Path) -> dict[str, Any]:
    """A _RUN.json or _SUCCESS file as a dict; one-line AqError if it is not one."""
    try:
        if path.stat().st_size > MAX_META:
            raise AqError(f"{path}: too large for a run file")
        d = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise AqError(f"{path}: not a run file of aq-infer ({e.__class__.__name__})") from None
    if not isinstance(d, dict) or d.get("format") != RUN_FORMAT:
        raise AqError(f"{path}: not a run file of aq-infer")
    return d


def start(out: Path, plan: Plan) -> tuple[list[int], int, int]:
    """Prepare `out` for `plan`; returns (the shards still to do, rows and error rows of the
    shards already done). A folder holding another run (another model, options or image
    listing) is refused, as is a part file that is not its shard's complete output (nothing is
    deleted: the user decides)."""
    if out.exists() and not out.is_dir():
        raise AqError(f"{out}: not a folder")
    out.mkdir(parents=True, exist_ok=True)
    want = plan.run_record()
    run = out / RUN_FILE
    if run.exists():
        have = read_meta(run)
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        if diff:
            raise AqError(f"{out}: holds a run with other {', '.join(diff)}; resume only the "
                          "same run, or write to another --output")
    else:
        write_atomic_bytes(run, json.dumps(want, indent=1).encode())
    todo, rows, errors = [], 0, 0
    for k in range(plan.shards):
        part = plan.part(out, k)
        if part.exists():
            good = check_part(part, plan.shard(k), plan.spec["output_format"])
            rows, errors = rows + good, errors + len(plan.shard(k)) - good
        else:
            todo.append(k)
    return todo, rows, errors


def _text(path: Path) -> str:
    """A file's text with its line ends as written (CSV rows end in \\r\\n)."""
    with open(path, newline="") as f:
        return f.read()


def _part_paths(part: Path, fmt: str) -> list[str]:
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(_text(part))))
        return [r[0] for r in rows[1:]]
    if fmt == "json":
        return [r["path"] for r in json.loads(part.read_text())]
    import pyarrow.parquet as pq
    return [str(p) for p in pq.read_table(part, columns=["path"]).column("path").to_pylist()]


def check_part(part: Path, shard: Sequence[str], fmt: str) -> int:
    """The readable images of a finished part file; AqError naming the file if its rows and
    error rows are not exactly its shard's paths, in order."""
    try:
        good = _part_paths(part, fmt)
        errs = errors_path(part)
        bad = [r[0] for r in list(csv.reader(io.StringIO(_text(errs))))[1:]] \
            if errs.exists() else []
    except Exception as e:  # any parse failure of a file we did not just write
        raise AqError(f"{part}: not a finished shard of this run ({e.__class__.__name__}); "
                      "delete it to run that shard again") from None
    listed = set(good)
    if sorted(good + bad) != sorted(shard) or good != [p for p in shard if p in listed]:
        raise AqError(f"{part}: does not hold its shard's {len(shard)} images; delete it to "
                      "run that shard again")
    return len(good)


def write_part(out: Path, plan: Plan, k: int, records: list[dict[str, Any]],
               errors: list[tuple[str, str]]) -> None:
    """Shard k's output: its error rows first (if any), then the part file (its presence
    marks the shard done), each atomically."""
    part = plan.part(out, k)
    if errors:
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["path", "reason"])
        w.writerows(errors)
        write_atomic_bytes(errors_path(part), buf.getvalue().encode())
    fmt, top_k = plan.spec["output_format"], plan.spec["top_k"]
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        cols = flat_columns(top_k)
        rows = [flat_row(r) for r in records]
        table = pa.table({c: [row[i] for row in rows] for i, c in enumerate(cols)},
                         schema=pa.schema([(c, pa.string() if c == "path" or c.startswith("label")
                                            else pa.int64()) for c in cols]))
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf)
        write_atomic_bytes(part, buf.getvalue().to_pybytes())
        return
    text = io.StringIO(newline="")
    w = RecordWriter(text, fmt, top_k)
    for r in records:
        w.write(r)
    w.close()
    write_atomic_bytes(part, text.getvalue().encode())


def finish(out: Path, plan: Plan, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write the manifest `_SUCCESS` (the run record, plus `manifest`); returns it."""
    m = {**plan.run_record(), **manifest}
    write_atomic_bytes(out / MANIFEST, json.dumps(m, indent=1).encode())
    return m
