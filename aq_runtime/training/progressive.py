"""Progressive mixed-precision search (ProQHA-style): start from 8 bits everywhere; each move
tries lowering every layer's weight bits and every activation tensor's bits by `--step`,
measures the loss increase on a fixed probe batch per unit of MicroNet metric saved, lowers
the cheapest `--lam` fraction of candidates, then finetunes `--interval` steps; it stops when
the metric reaches `--ratio` of the start. The path (every move, its layers, metric and
integer accuracy) is logged to path.csv. Resumable at move boundaries."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import load_checkpoint, save_checkpoint, write_json
from .config import TrainConfig
from .evaluate import evaluate, format_eval, write_reports
from .loop import Trainer, _Interrupt, append_csv, dist_info, finish_dist, prepare
from .qgraph import QuantGraph, _key

PATH_FIELDS = ["move", "lowered", "metric", "ratio", "probe_loss", "int_acc", "fq_acc",
               "int_agree_float", "avg_weight_bits", "avg_act_bits"]


def _candidates(model: QuantGraph) -> list[tuple[str, str]]:
    out = [("w", n.name) for n in model.fg.conv_nodes() if n.name not in model.ternary]
    out += [("a", t) for t in model.quantized if t not in model.luts]
    return out


def _param(model: QuantGraph, kind: str, name: str) -> torch.nn.Parameter:
    return (model.w_precision if kind == "w" else model.a_precision)[_key(name)]


def _n(model: QuantGraph, kind: str) -> int:
    return model.setup.weight_bits if kind == "w" else model.setup.act_bits


def _lower(model: QuantGraph, kind: str, name: str, step: int) -> bool:
    """Lower a layer's bits by `step` (not below --min-bits); False if nothing changed."""
    p = _param(model, kind, name)
    n = _n(model, kind)
    with torch.no_grad():
        bits = torch.floor(p * n + 0.5)
        new = torch.clamp(bits - step, min=model.setup.min_bits)
        if bool((new == bits).all()):
            return False
        p.copy_(new / n)
    return True


@torch.no_grad()
def _probe_loss(tr: Trainer, x: torch.Tensor, y: torch.Tensor | None, t: torch.Tensor | None
                ) -> float:
    tr.model.eval()
    logits = tr.model(x)
    loss = torch.zeros(())
    if y is not None and tr.cfg.alpha > 0:
        loss = loss + tr.cfg.alpha * F.cross_entropy(logits, y)
    if t is not None:
        loss = loss + tr.cfg.kd * F.mse_loss(logits, t)
    return float(loss)


def one_move(tr: Trainer, probe: tuple, start_metric: float) -> dict[str, Any]:
    model = tr.model
    base = _probe_loss(tr, *probe)
    m0 = tr.metric_now()
    scored = []
    for kind, name in _candidates(model):
        p = _param(model, kind, name)
        saved = p.detach().clone()
        if not _lower(model, kind, name, tr.cfg.step):
            continue
        dm = m0 - tr.metric_now()
        dl = _probe_loss(tr, *probe) - base
        with torch.no_grad():
            p.copy_(saved)
        if dm > 0:
            scored.append((max(dl, 0.0) / dm, kind, name))
    scored.sort()
    k = max(1, int(round(tr.cfg.lam * len(scored)))) if scored else 0
    for _, kind, name in scored[:k]:
        _lower(model, kind, name, tr.cfg.step)
    return {"lowered": " ".join(f"{kind}:{name}" for _, kind, name in scored[:k]),
            "metric": tr.metric_now(), "ratio": tr.metric_now() / start_metric,
            "probe_loss": _probe_loss(tr, *probe), "moved": k > 0}


def progressive_search(cfg: TrainConfig, progress: bool = True, resume: bool = False) -> int:
    rank, world = dist_info()
    try:
        return _search(cfg, progress, resume, rank, world)
    finally:
        finish_dist(world)


def _search(cfg: TrainConfig, progress: bool, resume: bool, rank: int, world: int) -> int:
    from tqdm import tqdm

    cfg.lr_fixed = True  # the search has no fixed length: a cosine schedule would end early
    tr, gstep, best, out = prepare(cfg, resume, rank, world)
    cfg = tr.cfg
    state: dict[str, Any] = {"move": 0, "start_metric": tr.metric_now()}
    if resume:
        state = dict(load_checkpoint(out / "last.pt")["progress"].get("search", state))
    elif rank == 0:
        out.mkdir(exist_ok=True)
        write_json(out / "settings.json", {"config": cfg.to_dict(),
                                            "quant": tr.model.setup.to_dict()})
    n_probe = min(256, tr.data.size)
    x, y = tr.data.train_batch(np.arange(n_probe), np.random.default_rng(cfg.seed))
    xt = torch.from_numpy(np.ascontiguousarray(x))
    probe = (xt, torch.from_numpy(y) if y is not None else None,
             tr.teacher(xt) if tr.teacher is not None else None)
    target = cfg.ratio * state["start_metric"]
    bar = tqdm(desc="aq-train progressive", disable=not progress or rank != 0, file=sys.stderr)
    with _Interrupt() as intr:
        while tr.metric_now() > target:
            row = one_move(tr, probe, state["start_metric"])
            if not row.pop("moved"):
                break
            for _ in range(cfg.interval):
                tr.step(gstep)
                gstep += 1
            state["move"] += 1
            if rank == 0:
                res, _ = evaluate(tr.model, tr.teacher_fg, tr.data.val_x, tr.data.val_y,
                                  cfg.eval_backend)
                row.update(move=state["move"], **{k: res.get(k) for k in PATH_FIELDS if k in res})
                append_csv(out / "path.csv", row, PATH_FIELDS)
                ck = tr.state(gstep, best)
                ck["progress"]["search"] = state
                save_checkpoint(out / "last.pt", ck)
                bar.update(1)
                bar.set_postfix(ratio=f"{row['ratio']:.3f}", wb=f"{row['avg_weight_bits']:.2f}")
            if intr.hit or (cfg.max_steps is not None and gstep >= cfg.max_steps):
                if rank == 0:
                    print(f"aq-train: search stopped after move {state['move']}; saved "
                          f"{out / 'last.pt'} (continue with --resume {out})", file=sys.stderr)
                return 130 if intr.hit else 0
    bar.close()
    for _ in range(cfg.interval):  # settle after the last move
        tr.step(gstep)
        gstep += 1
    if rank == 0:
        res, g = evaluate(tr.model, tr.teacher_fg, tr.data.val_x, tr.data.val_y, cfg.eval_backend)
        ck = tr.state(gstep, best)
        ck["progress"]["search"] = state
        save_checkpoint(out / "last.pt", ck)
        save_checkpoint(out / "best.pt", ck)
        write_reports(g, out, f"{cfg.model} progressive: ratio {tr.metric_now() / state['start_metric']:.3f}")
        write_json(out / "result.json", res)
        print(f"aq-train: searched {state['move']} moves; model {out / 'best.pt'}\n"
              f"{format_eval(res)}", file=sys.stderr)
    return 0

