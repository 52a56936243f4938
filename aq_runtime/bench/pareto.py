"""A size-vs-fidelity scatter (Pillow only): file bytes on a log axis against logit SQNR, one
colour per export recipe (the last word of a row's name), squares for uniform bit-widths
(names starting with 'w'), the Pareto front joined."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = [(31, 90, 160), (240, 150, 40), (40, 160, 70), (200, 50, 50), (130, 80, 170),
           (120, 120, 120), (0, 170, 180), (150, 90, 40), (230, 90, 190), (20, 20, 20)]


def plot_pareto(rows: list, path: str | Path, title: str = "") -> None:
    """Rows with fidelity (bench.compare.Row) -> PNG at `path`, written atomically."""
    pts = [(r.name, float(r.file_bytes), r.fid.sqnr_db) for r in rows
           if r.fid is not None and math.isfinite(r.fid.sqnr_db)]
    if not pts:
        return
    W, H, L, T, B, R = 820, 520, 60, 40, 70, 190
    im = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(im)
    xs = [math.log10(p[1]) for p in pts]
    x0, x1 = min(xs) - 0.05, max(xs) + 0.05
    y0, y1 = min(0.0, min(p[2] for p in pts)), max(p[2] for p in pts) + 2

    def at(b: float, db: float) -> tuple[float, float]:
        return (L + (math.log10(b) - x0) / (x1 - x0) * (W - L - R),
                H - B - (db - y0) / (y1 - y0) * (H - T - B))

    for db in range(5 * int(math.ceil(y0 / 5)), int(y1) + 1, 5):
        y = at(10 ** x0, db)[1]
        d.line([(L, y), (W - R, y)], fill=(230, 230, 230))
        d.text((L - 30, y - 6), f"{db:>3}", fill="black")
    for mb in (0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20):
        b = mb * 1e6
        if x0 <= math.log10(b) <= x1:
            x = at(b, y0)[0]
            d.line([(x, T), (x, H - B)], fill=(230, 230, 230))
            d.text((x - 10, H - B + 6), f"{mb:g}", fill="black")
    d.text((L + 150, H - B + 24), "file size, MB (log scale)", fill="black")
    d.text((4, T - 16), "logit SQNR, dB", fill="black")
    d.text((L, 4), title, fill="black")
    def family(name: str) -> str:
        return "ORT int8" if name.startswith("ORT") else name.split()[-1]

    families = []
    for name, _, _ in pts:
        if family(name) not in families:
            families.append(family(name))
    front, best = [], -1e9
    for name, b, db in sorted(pts, key=lambda p: p[1]):
        if db > best:
            front.append(at(b, db))
            best = db
    if len(front) > 1:
        d.line(front, fill=(180, 180, 180), width=1)
    for name, b, db in pts:
        c = COLOURS[families.index(family(name)) % len(COLOURS)]
        x, y = at(b, db)
        mark = d.rectangle if name.startswith("w") and name[1:2].isdigit() else d.ellipse
        mark([x - 4, y - 4, x + 4, y + 4], fill=c)
    for i, f in enumerate(families):
        y = T + 10 + 16 * i
        c = COLOURS[i % len(COLOURS)]
        d.ellipse([W - R + 12, y, W - R + 20, y + 8], fill=c)
        d.text((W - R + 26, y - 2), f, fill="black")
    y = T + 14 + 16 * len(families)
    d.text((W - R + 12, y), "square: uniform bits", fill="black")
    d.text((W - R + 12, y + 14), "circle: --bits auto", fill="black")
    tmp = Path(path).with_suffix(".tmp.png")
    im.save(tmp)
    tmp.replace(path)
