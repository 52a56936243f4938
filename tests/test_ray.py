"""`aq-infer --engine ray` on a local Ray with capped memory: the part files' rows, concatenated
in part order (= sorted by path), equal the single-machine CSV byte for byte; corrupt, empty
and truncated images become error rows; an interrupted run resumes to the same output; a rerun
against another model, a damaged run file or an altered part file is refused in one line,
nothing lost. The cluster tests are in test_ray_cluster.py."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="needs the [ray] extra (Ray Data)")

from aq_runtime import AqError  # noqa: E402
from aq_runtime.cluster.ray_infer import infer_ray  # noqa: E402

DATA = Path(__file__).parent / "data"
MODEL = DATA / "golden_lite0_mixed32.aqz"
OTHER = DATA / "golden_small.aqz"


def make_images(root: Path, n: int) -> Path:
    """`n` real photos (crops of the bundled ones, some in a sub-folder) and three bad files."""
    from PIL import Image

    from aq_runtime.data.photos import photo_paths
    photos = [Image.open(p).convert("RGB") for _, p in sorted(photo_paths().items())[:12]]
    (root / "sub").mkdir(parents=True)
    for i in range(n):
        im = photos[i % len(photos)]
        w, h = im.size
        s = 0.5 + 0.5 * ((i // len(photos)) % 4) / 4
        crop = im.crop((0, 0, int(w * s), int(h * s))).resize((96, 96))
        crop.save(root / ("sub" if i % 3 == 0 else "") / f"img{i:03d}.jpg", quality=90)
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (root / "empty.png").write_bytes(b"")
    data = (root / "img001.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    return root


def text(path: Path) -> str:
    with open(path, newline="") as f:
        return f.read()


def single_machine(model: Path, images: Path, tmp: Path, fmt: str = "csv",
                   cwd: Path | None = None) -> str:
    out = tmp / f"single.{fmt}"
    r = subprocess.run([sys.executable, "-m", "aq_runtime.cli.infer", str(model), str(images),
                        "--quiet", "--format", fmt, "--output", str(out)],
                       capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return text(out)


def parts(out: Path, fmt: str = "csv") -> list[Path]:
    return sorted(p for p in out.glob(f"part-*.{fmt}") if "errors" not in p.name)


def concatenated_csv(out: Path) -> str:
    """The part files' rows in part order, under one header."""
    texts = [text(p).split("\r\n") for p in parts(out)]
    rows = [r for t in texts for r in t[1:] if r]
    return "\r\n".join([texts[0][0], *rows]) + "\r\n"


def error_rows(out: Path) -> dict[str, str]:
    rows = {}
    for p in sorted(out.glob("part-*.errors.csv")):
        rows.update({r[0]: r[1] for r in list(csv.reader(io.StringIO(p.read_text())))[1:]})
    return rows


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, object_store_memory=128 << 20, include_dashboard=False,
             log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("ray_images"), 40)


def test_equals_the_single_machine_byte_for_byte(local_ray, images, tmp_path):
    out = tmp_path / "out"
    m = infer_ray(MODEL, images, out, shard_size=8, batch=4, workers=1, progress=False)
    assert concatenated_csv(out) == single_machine(MODEL, images, tmp_path)
    rows = [r.split(",")[0] for r in concatenated_csv(out).split("\r\n")[1:-1]]
    assert rows == sorted(rows, key=Path)  # part order is path order
    errs = error_rows(out)
    assert set(errs) == {str(images / f) for f in ("corrupt.jpg", "empty.png", "truncated.jpg")}
    assert "empty file" in errs[str(images / "empty.png")]
    assert m["rows"] == 40 and m["error_rows"] == 3 and m["images"] == 43
    assert m["engine"] == "ray" and m["shards"] == len(parts(out)) == 6
    assert m["model"] and m["workers"]
    assert all(w["backend"] and w["features"] and w["start_s"] > 0 for w in m["workers"])
    assert json.loads((out / "_SUCCESS").read_text()) == m


def test_relative_folder(local_ray, images, tmp_path, monkeypatch):
    """Paths and error messages named as the single machine names them: relative stays
    relative (Ray reads absolute paths)."""
    monkeypatch.chdir(images.parent)
    out = tmp_path / "out"
    infer_ray(MODEL, images.name, out, shard_size=64, workers=1, progress=False)
    assert concatenated_csv(out) == single_machine(MODEL, Path(images.name), tmp_path,
                                                   cwd=images.parent)
    errs = error_rows(out)
    assert errs[f"{images.name}/empty.png"] == f"{images.name}/empty.png: empty file (0 bytes)"


def test_json_and_parquet(local_ray, images, tmp_path):
    out = tmp_path / "json"
    infer_ray(MODEL, images, out, fmt="json", shard_size=16, workers=1, progress=False)
    single = json.loads(single_machine(MODEL, images, tmp_path, "json"))
    assert [r for p in parts(out, "json") for r in json.loads(p.read_text())] == single
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "parquet"
    infer_ray(MODEL, images, out, fmt="parquet", shard_size=16, workers=1, progress=False)
    tables = [pq.read_table(p).to_pylist() for p in parts(out, "parquet")]
    rows = list(csv.DictReader(io.StringIO(single_machine(MODEL, images, tmp_path))))
    assert [r for t in tables for r in t] == [
        {k: v if k == "path" or k.startswith("label") else int(v) for k, v in r.items()}
        for r in rows]


def _one_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = [x for x in r.stderr.strip().splitlines() if x.startswith("error:")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aq_runtime.cli.infer", *map(str, args)],
                          capture_output=True, text=True)


def test_interrupted_run_resumes_to_the_same_output(images, tmp_path):
    """A driver stopped mid-run (SIGINT after its first shard), then the same command again:
    the same files as a clean run; then a resume with another model is refused."""
    clean, out = tmp_path / "clean", tmp_path / "out"
    args = [MODEL, images, "--engine", "ray", "--shard-size", "4", "--batch", "2", "--quiet"]
    assert _cli(*args, "--output", clean).returncode == 0
    p = subprocess.Popen([sys.executable, "-m", "aq_runtime.cli.infer", *map(str, args),
                          "--output", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t = time.time()
    while not parts(out) and p.poll() is None and time.time() - t < 300:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=120)
    done = parts(out)
    assert done and not (out / "_SUCCESS").exists()  # stopped mid-run
    before = {f.name: f.read_bytes() for f in done}
    r = _cli(*args, "--output", out)
    assert r.returncode == 0, r.stderr
    assert all((out / n).read_bytes() == b for n, b in before.items())  # kept, not redone
    m = json.loads((out / "_SUCCESS").read_text())
    assert m["resumed_shards"] == len(before)
    files = sorted(f.name for f in out.iterdir() if f.name.startswith("part-"))
    assert files == sorted(f.name for f in clean.iterdir() if f.name.startswith("part-"))
    assert all((out / f).read_bytes() == (clean / f).read_bytes() for f in files)
    line = _one_line(_cli(OTHER, images, "--engine", "ray", "--output", out, "--quiet"))
    assert "other model" in line
    assert all((out / f).read_bytes() == (clean / f).read_bytes() for f in files)  # nothing lost


def test_hostile_run_files(local_ray, images, tmp_path):
    out = tmp_path / "out"
    infer_ray(MODEL, images, out, shard_size=16, workers=1, progress=False)
    run = (out / "_RUN.json").read_bytes()
    part = parts(out)[1]
    good = part.read_bytes()
    for bad in (b"", b"{not json", b"[1, 2]", json.dumps({"format": "x"}).encode()):
        (out / "_RUN.json").write_bytes(bad)
        with pytest.raises(AqError, match="_RUN.json: not a run file"):
            infer_ray(MODEL, images, out, shard_size=16, progress=False)
    (out / "_RUN.json").write_bytes(run)
    with pytest.raises(AqError, match="other shard_size"):
        infer_ray(MODEL, images, out, shard_size=8, progress=False)
    for bad in (good[: len(good) // 2], good.replace(b"img0", b"imgX"), b"\x00\xff" * 10):
        part.write_bytes(bad)
        with pytest.raises(AqError, match=f"{part.name}: (not a finished shard|does not hold)"):
            infer_ray(MODEL, images, out, shard_size=16, progress=False)
        assert part.read_bytes() == bad  # the user's file, left as it is
    part.write_bytes(good)
    manifest = (out / "_SUCCESS").read_bytes()
    m = infer_ray(MODEL, images, out, shard_size=16, progress=False)  # finished: nothing to do
    assert (out / "_SUCCESS").read_bytes() == manifest and m["rows"] == 40
    (out / "_SUCCESS").write_bytes(b"{")
    with pytest.raises(AqError, match="_SUCCESS: not a run file"):
        infer_ray(MODEL, images, out, shard_size=16, progress=False)
    assert (out / "_SUCCESS").read_bytes() == b"{"
    (out / "_SUCCESS").unlink()  # the manifest gone: written again from the finished shards
    m = infer_ray(MODEL, images, out, shard_size=16, progress=False)
    assert m["resumed_shards"] == m["shards"] and m["rows"] == 40


def test_cli_errors(images, tmp_path):
    assert "needs --output" in _one_line(_cli(MODEL, images, "--engine", "ray"))
    assert "only with --engine ray" in _one_line(_cli(MODEL, images, "--format", "parquet"))
    line = _one_line(_cli(MODEL, images, "--engine", "ray", "--output", tmp_path / "o",
                          "--ray-address", "127.0.0.1:1"))
    assert "Ray" in line
    # the driver checks the bytes it will send, before Ray starts: one line, nothing written
    junk = tmp_path / "junk.kernels"
    junk.write_bytes(b"not a zip archive")
    line = _one_line(_cli(MODEL, images, "--engine", "ray", "--output", tmp_path / "o2",
                          "--kernels", junk))
    assert "junk.kernels" in line and "not a kernels file" in line
    line = _one_line(_cli(tmp_path / "none.aqz", images, "--engine", "ray", "--output",
                          tmp_path / "o3"))
    assert "none.aqz" in line and "no such file" in line
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_uri_input(local_ray, images, tmp_path):
    """A file-system URI (here file://; s3:// and others are listed and read the same way):
    the same rows as the folder, named by their URIs."""
    folder, uri = tmp_path / "folder", tmp_path / "uri"
    infer_ray(MODEL, images, folder, shard_size=64, workers=1, progress=False)
    m = infer_ray(MODEL, f"file://{images}", uri, shard_size=64, workers=1, progress=False)
    assert m["rows"] == 40 and m["error_rows"] == 3
    assert text(parts(uri)[0]) == text(parts(folder)[0]).replace(str(images), f"file://{images}")
