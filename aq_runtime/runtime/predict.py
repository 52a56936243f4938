"""Predictions for image files: decode/preprocess per the model's input spec, run a Session in
batches, top-k with labels; unreadable files are collected as errors, never fatal. Output as
CSV or JSON, written to a temp file and renamed."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import multiprocessing
import time
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np
from tqdm import tqdm

from .. import AqError
from ..data.images import list_images, load_image, resize_center_crop
from ..files import atomic_open, write_atomic_bytes
from .session import Session


def input_spec(session: Session) -> tuple[int, tuple[int, int], int]:
    """(resize of the short side, (H, W) crop, channels) the model's input wants."""
    h, w, c = session.input_shape
    return int(session.graph.meta.get("input", {}).get("resize", max(h, w))), (h, w), c


def preprocess_file(session: Session, path: Path) -> np.ndarray:
    resize, crop, c = input_spec(session)
    return resize_center_crop(load_image(path, c), resize, crop)


def topk_rows(logits: np.ndarray, k: int) -> np.ndarray:
    """Top-k indices per row: by logit descending, ties to the lowest index."""
    return np.argsort(-logits.astype(np.int64), axis=1, kind="stable")[:, :k]


def _decoded_chunks(jobs: list[tuple], chunk: int, workers: int) -> Iterator[list[tuple]]:
    """Decoded images in order, `chunk` at a time; with workers, the next chunk decodes in
    worker processes while the caller runs the current one (memory stays ~2 chunks)."""
    from ..data.images import decode_job
    parts = [jobs[i:i + chunk] for i in range(0, len(jobs), chunk)]
    if workers <= 1 or len(parts) == 0:
        for part in parts:
            yield [decode_job(j) for j in part]
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of a process running numba threads
    with ctx.Pool(workers) as pool:
        pending = pool.map_async(decode_job, parts[0])
        for k in range(len(parts)):
            done = pending.get()
            if k + 1 < len(parts):
                pending = pool.map_async(decode_job, parts[k + 1])
            yield done


def predict_stream(session: Session, paths: list[Path], top_k: int = 5, batch: int = 16,
                   workers: int = 1, progress: bool = True
                   ) -> Iterator[tuple[dict[str, Any] | None, tuple[str, str] | None]]:
    """Yield (record, None) per readable image and (None, (path, message)) per skipped file,
    in path order. Record: {"path", "topk": [{"index", "label", "logit"}]}."""
    resize, crop, c = input_spec(session)
    jobs = [(p, resize, crop, c) for p in paths]
    bar = tqdm(total=len(paths), desc="infer", unit="img", disable=not progress)
    for done in _decoded_chunks(jobs, batch * 4, workers):
        for i in range(0, len(done), batch):
            part = done[i:i + batch]
            yield from predict_decoded(session, part, top_k)
            bar.update(len(part))
    bar.close()


def predict_decoded(session: Session, part: list[tuple[str, np.ndarray | None, str | None]],
                    top_k: int) -> list[tuple[dict[str, Any] | None, tuple[str, str] | None]]:
    """One batch of decoded images (data.images.decode_job's results) through the session:
    (record, None) per image, (None, (path, message)) per file that did not decode, in order."""
    labels = session.labels
    good = [(p, a) for p, a, _ in part if a is not None]
    results = {}
    if good:
        logits = session.run(np.stack([a for _, a in good]))
        for (p, _), row, idx in zip(good, logits, topk_rows(logits, top_k)):
            results[p] = {"path": p, "topk": [
                {"index": int(j), "label": labels[j] if j < len(labels) else str(j),
                 "logit": int(row[j])} for j in idx]}
    return [(results[p], None) if err is None else (None, (p, err)) for p, _, err in part]


def flat_columns(k: int) -> list[str]:
    """The columns of a flat (CSV or table) prediction row for top-k."""
    return ["path"] + [f"{f}{i + 1}" for i in range(k) for f in ("index", "label", "logit")]


def flat_row(r: dict[str, Any]) -> list[Any]:
    """A prediction record as a flat row of `flat_columns`."""
    return [r["path"]] + [v for t in r["topk"] for v in (t["index"], t["label"], t["logit"])]


class RecordWriter:
    """Streams records as CSV (one row per image) or JSON (a list), to a text stream."""

    def __init__(self, stream: IO[str], fmt: str, k: int):
        self.f, self.fmt, self.n = stream, fmt, 0
        if fmt == "csv":
            self.csv = csv.writer(stream)
            self.csv.writerow(flat_columns(k))
        else:
            stream.write("[")

    def write(self, r: dict[str, Any]) -> None:
        if self.fmt == "csv":
            self.csv.writerow(flat_row(r))
        else:
            self.f.write(("," if self.n else "") + "\n " + json.dumps(r))
        self.n += 1

    def close(self) -> None:
        if self.fmt == "json":
            self.f.write("\n]\n")


def write_atomic(path: str | Path, text: str) -> None:
    write_atomic_bytes(path, text.encode())


def infer_folder(model: str | Path, folder: str | Path, top_k: int = 5, fmt: str = "csv",
                 backend: str = "auto", progress: bool = True, output: str | Path | None = None,
                 stream: IO[str] | None = None, limit: int | None = None, recursive: bool = True,
                 exts: tuple[str, ...] | None = None, workers: int = 1, batch: int = 16,
                 kernels: str | Path | None = None) -> dict[str, Any]:
    """aq-infer as a library call: stream predictions to `output` (a temp file renamed at the
    end) or `stream` (default: collected and returned as "text"); skipped files are listed;
    `kernels`: a kernels file of the model (aq-compile) for the tvm backend.
    Returns {"images", "skipped": [(path, message)], "seconds", "images_per_s"}.
    AqError when there is no image, or none of them is readable (then nothing is written)."""
    if fmt not in ("csv", "json"):
        raise AqError(f"unknown format {fmt!r} (csv or json)")
    if top_k < 1:
        raise AqError("--top-k must be at least 1")
    if limit is not None and limit < 1:
        raise AqError("--limit must be at least 1")
    session = Session(model, backend, kernels=kernels)
    paths = list_images(folder, recursive, exts) if exts else list_images(folder, recursive)
    if not paths:
        raise AqError(f"{folder}: no image files found")
    paths = paths[:limit] if limit else paths
    k = min(top_k, len(session.labels) or top_k)
    out_path = Path(output) if output else None
    if out_path is not None and not out_path.parent.exists():
        raise AqError(f"{out_path.parent}: output folder does not exist")
    t0 = time.perf_counter()
    skipped: list[tuple[str, str]] = []
    writer = None
    with contextlib.ExitStack() as stack:  # a file appears complete, or not at all
        f: IO[str] = stack.enter_context(atomic_open(out_path, "w", newline="")) \
            if out_path is not None else stream if stream is not None else io.StringIO()
        for rec, err in predict_stream(session, paths, k, batch, workers, progress):
            if err:
                skipped.append(err)
                continue
            if writer is None:
                writer = RecordWriter(f, fmt, k)
            writer.write(rec)
        if writer is None:
            first = skipped[0][1] if skipped else "no images"
            raise AqError(f"{folder}: no readable images ({len(skipped)} skipped; first: {first})")
        writer.close()
    dt = time.perf_counter() - t0
    return {"images": writer.n, "skipped": skipped, "seconds": dt,
            "images_per_s": writer.n / dt if dt > 0 else float("inf"),
            "text": f.getvalue() if isinstance(f, io.StringIO) else None}
