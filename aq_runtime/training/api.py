"""Library calls on training checkpoints: recognise one, evaluate one (integer and fake-quant),
and turn one into the integer graph that `aq-export ckpt.pt model.aqz` writes."""

from __future__ import annotations

import sys
from pathlib import Path

from .. import AqError
from ..ir.graph import Graph
from .build import restore_model
from .checkpoint import load_checkpoint
from .evaluate import evaluate, format_eval, write_reports


def training_checkpoint(source: str) -> dict | None:
    """The loaded aq-train checkpoint at `source` (its quant params are trained: no
    calibration, no --bits), or None when `source` is something else."""
    p = Path(source)
    if p.suffix.lower() != ".pt" or not p.is_file():
        return None
    import torch

    from .checkpoint import is_training_checkpoint
    try:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:  # not loadable: the float-model path reports it
        return None
    return load_checkpoint(p, raw) if is_training_checkpoint(raw) else None


def export_checkpoint(path: str | Path, ck: dict, output: str | Path,
                      coding: str = "packed") -> Graph:
    """`aq-export ckpt.pt model.aqz`: write a training checkpoint's integer graph (atomic),
    its convs' codes stored as `coding` says (packed, or entropy: each conv rANS-coded where
    that is smaller), and print its summary."""
    from ..format import write_aqz
    from ..format.inspect import summarize
    from ..files import output_path
    out = output_path(output)
    g = checkpoint_graph(path, ck)
    g.store_weights_as(coding)
    write_aqz(g, out)
    print(summarize(g, out), file=sys.stderr)
    return g


def checkpoint_graph(path: str | Path, ck: dict | None = None) -> Graph:
    """The integer graph of a training checkpoint: exactly what its integer eval ran (`ck`:
    the checkpoint when already loaded)."""
    ck = ck if ck is not None else load_checkpoint(path)
    model, _ = restore_model(ck)
    cfg = ck["settings"]["config"]
    return model.integerize(meta={"training": {"strategy": model.setup.strategy,
                                               "checkpoint": Path(path).name,
                                               "data": cfg.get("data")}})


def eval_checkpoint(path: str | Path, out: str | None = None, data: str | None = None,
                    backend: str = "auto") -> int:
    from .data import load_train_data
    ck = load_checkpoint(path)
    cfg = ck["settings"]["config"]
    model, fg = restore_model(ck)
    d = load_train_data(data or cfg["data"], fg, bool(cfg.get("kd_only")),
                        seed=int(cfg.get("seed", 0)))
    res, g = evaluate(model, fg, d.val_x, d.val_y, backend)
    folder = Path(out) if out else Path(path).parent
    if not folder.is_dir():
        raise AqError(f"{folder}: no such folder")
    write_reports(g, folder, f"{cfg['model']} {model.setup.strategy}")
    print(format_eval(res), file=sys.stderr)
    print(f"wrote {folder / 'quant_info.json'} and {folder / 'bits.png'}", file=sys.stderr)
    return 0
