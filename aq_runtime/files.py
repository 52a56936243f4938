"""Atomic file output shared by every writer (.aqz, predictions, checkpoints, caches, compiled
kernels): write to a temp file beside the target, then rename, so a crash or Ctrl-C never
leaves a half-written file; the file gets the permissions a plain open() would give (umask
applied; tempfile's own are 0600)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import IO

from . import AqError


@lru_cache(maxsize=1)
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_path(path: str | Path) -> Path:
    """`path` as a Path whose folder exists (else a one-line AqError): checked before long
    work whose result goes there, and by every atomic writer."""
    p = Path(path)
    if not p.parent.exists():
        raise AqError(f"{p.parent}: output folder does not exist")
    return p


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[str]:
    """A temp path beside `path` for a writer that wants a file name (torch.save, TVM's
    export_library, which picks its linker by `suffix`); renamed onto `path` when the block
    ends, removed if it raises. A missing folder is a one-line AqError."""
    p = output_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=suffix, dir=p.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb", **kw) -> Iterator[IO]:
    """open(path, mode) that only appears at `path`, complete, when the block ends."""
    with atomic_path(path) as tmp, open(tmp, mode, **kw) as f:
        yield f


def write_atomic_bytes(path: str | Path, data: bytes) -> None:
    """`data` at `path`, complete or not at all."""
    with atomic_open(path, "wb") as f:
        f.write(data)
