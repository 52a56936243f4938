"""Predictions for image files: decode/preprocess per the model's input spec, run a Session in
batches, top-k with labels; unreadable files are collected as errors, never fatal. Output as
CSV or JSON, written to a temp file and renamed."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .. import AqError
from ..data.images import list_images, load_image, resize_center_crop
from .session import Session


def preprocess_file(session: Session, path: Path) -> np.ndarray:
    h, w, c = session.input_shape
    resize = int(session.graph.meta.get("input", {}).get("resize", max(h, w)))
    return resize_center_crop(load_image(path, c), resize, (h, w))


def topk_rows(logits: np.ndarray, k: int) -> np.ndarray:
    """Top-k indices per row: by logit descending, ties to the lowest index."""
    return np.argsort(-logits.astype(np.int64), axis=1, kind="stable")[:, :k]


def predict_paths(session: Session, paths: list[Path], top_k: int = 5, batch: int = 16,
                  progress: bool = True) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """(records {"path", "topk": [{"index", "label", "logit"}]}, errors [(path, message)])."""
    labels = session.labels
    records, errors = [], []
    bar = tqdm(total=len(paths), desc="infer", unit="img", disable=not progress)
    for i in range(0, len(paths), batch):
        ok, arrs = [], []
        for p in paths[i:i + batch]:
            try:
                arrs.append(preprocess_file(session, p))
                ok.append(p)
            except AqError as e:
                errors.append((str(p), str(e)))
        if arrs:
            logits = session.run(np.stack(arrs))
            for p, row, idx in zip(ok, logits, topk_rows(logits, top_k)):
                records.append({"path": str(p), "topk": [
                    {"index": int(j), "label": labels[j] if j < len(labels) else str(j),
                     "logit": int(row[j])} for j in idx]})
        bar.update(len(paths[i:i + batch]))
    bar.close()
    return records, errors


def format_records(records: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(records, indent=1) + "\n"
    buf = io.StringIO()
    k = max((len(r["topk"]) for r in records), default=0)
    wr = csv.writer(buf)
    wr.writerow(["path"] + [f"{f}{i + 1}" for i in range(k) for f in ("index", "label", "logit")])
    for r in records:
        wr.writerow([r["path"]] + [v for t in r["topk"] for v in (t["index"], t["label"], t["logit"])])
    return buf.getvalue()


def write_atomic(path: str | Path, text: str) -> None:
    write_atomic_bytes(path, text.encode())


def write_atomic_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temp file beside `path`, then rename: never a half-written file."""
    path = Path(path)
    if not path.parent.exists():
        raise AqError(f"{path.parent}: output folder does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def infer_folder(model: str | Path, folder: str | Path, top_k: int = 5, fmt: str = "csv",
                 backend: str = "auto", progress: bool = True
                 ) -> tuple[str, list[tuple[str, str]]]:
    """The text aq-infer prints and the skipped files. AqError when nothing can be read."""
    if fmt not in ("csv", "json"):
        raise AqError(f"unknown format {fmt!r} (csv or json)")
    if top_k < 1:
        raise AqError("--top-k must be at least 1")
    session = Session(model, backend)
    paths = list_images(folder)
    if not paths:
        raise AqError(f"{folder}: no image files found")
    records, errors = predict_paths(session, paths, min(top_k, len(session.labels) or top_k),
                                    progress=progress)
    if not records:
        first = errors[0][1] if errors else "no images"
        raise AqError(f"{folder}: no readable images ({len(errors)} skipped; first: {first})")
    return format_records(records, fmt), errors
