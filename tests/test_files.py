"""Atomic output (aq_runtime.files): complete or absent, with the permissions open() gives."""

import os

import pytest

from aq_runtime import AqError
from aq_runtime.files import atomic_open, write_atomic_bytes


def test_atomic_file_has_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic_bytes(tmp_path / "a.bin", b"x")
        with open(tmp_path / "b.bin", "wb") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == (tmp_path / "b.bin").stat().st_mode & 0o777


def test_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_open(tmp_path / "c.txt", "w") as f:
            f.write("half")
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(AqError, match="output folder does not exist"):
        write_atomic_bytes(tmp_path / "missing" / "d.bin", b"x")


def test_benchmark_result_written_whole_and_printed(tmp_path, capsys):
    from aq_runtime.bench.results import write_result
    p = write_result(tmp_path / "results" / "table.txt", "a | b\n1 | 2\n")
    assert p.read_text() == "a | b\n1 | 2\n" and "1 | 2" in capsys.readouterr().out
    assert sorted(x.name for x in p.parent.iterdir()) == ["table.txt"]  # no temp file left
