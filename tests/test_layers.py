"""The package's layers point down: no module imports a layer above its own, there is no import
circle between packages, no backend imports another backend, and nothing in the package or
benchmarks/ imports tests/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "aq_runtime"

# lowest first; a module may import its own layer and the layers below it
LAYERS = [
    ("aq_runtime", "files", "optional"),  # AqError, atomic files, optional dependencies
    ("quant",),  # the integer semantics
    ("ir",),  # the integer graph, its validation, the float graph
    ("format", "data", "models"),  # the .aqz file; image decoding; float model definitions
    ("kernels",),  # the reference and every backend, the executor, kernel choice and caches
    ("runtime",),  # Session, backends, prediction, fidelity
    ("interop",),  # ONNX in and out
    ("export",),
    ("training",),
    ("bench", "cluster"),
    ("cli",),
]
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module named by an import anywhere in the file (function bodies too)."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    return imports_of(path.read_text(), package)


def imports_of(source: str, package: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and parts[1] not in LEVEL):
        return "aq_runtime"
    return parts[1]


def package_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        mod = module_name(path)
        for target in imports(path):
            if target.split(".")[0] == "aq_runtime":
                edges.setdefault(mod, set()).add(target)
    return edges


def test_every_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert packages | modules <= set(LEVEL), (packages | modules) - set(LEVEL)


def upward(edges: dict[str, set[str]]) -> list[str]:
    # `from aq_runtime import AqError` names a symbol, not a module: the base layer
    return sorted(
        f"{mod} -> {target}"
        for mod, targets in edges.items()
        for target in targets
        if LEVEL[layer(target)] > LEVEL[layer(mod)]
    )


def test_no_import_points_up():
    wrong = upward(package_edges())
    assert not wrong, "imports that point up:\n" + "\n".join(wrong)


def test_no_circle_between_layers():
    between: dict[str, set[str]] = {}
    for mod, targets in package_edges().items():
        for target in targets:
            a, b = layer(mod), layer(target)
            if a != b:
                between.setdefault(a, set()).add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in between.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    circles = [name for name in between if reaches(name, name, {name})]
    assert not circles, circles


def backend_of(module: str) -> str | None:
    """The backend folder (kernels/<name>/) a module lies in, if any."""
    parts = module.split(".")
    if parts[:2] == ["aq_runtime", "kernels"] and len(parts) > 2 \
            and (PACKAGE / "kernels" / parts[2]).is_dir():
        return parts[2]
    return None


def across_backends(edges: dict[str, set[str]]) -> list[str]:
    return sorted(f"{mod} -> {target}" for mod, targets in edges.items() for target in targets
                  if backend_of(mod) and backend_of(target)
                  and backend_of(mod) != backend_of(target))


def test_no_backend_imports_another():
    """What backends share (the reference, the NCHW Numba kernels, kernel choice, caches, the
    Ops base) lies in kernels/ itself, not inside one of them."""
    assert {"numba_cpu", "tvm"} <= {backend_of(f"aq_runtime.kernels.{p.name}.ops")
                                    for p in (PACKAGE / "kernels").iterdir()}
    wrong = across_backends(package_edges())
    assert not wrong, "backends importing each other:\n" + "\n".join(wrong)
    assert across_backends({"aq_runtime.kernels.tvm.ops": {"aq_runtime.kernels.numba_cpu.ops",
                                                           "aq_runtime.kernels.nchw"}}) == [
        "aq_runtime.kernels.tvm.ops -> aq_runtime.kernels.numba_cpu.ops"]


def test_nothing_imports_tests():
    offenders = []
    for folder in (PACKAGE, ROOT / "benchmarks", ROOT / "tools"):
        for path in folder.rglob("*.py"):
            if any(t == "tests" or t.startswith("tests.") for t in imports(path)):
                offenders.append(str(path.relative_to(ROOT)))
            elif any("sys.path" in line and "tests" in line
                     for line in path.read_text().splitlines()):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders


def test_the_checker_sees_an_upward_import():
    """The test above can fail: a kernels module importing export (even inside a function) is
    reported, one importing quant is not."""
    source = ("import numpy\nfrom ..quant import bits\n"
              "def f():\n    from ..export.pipeline import g\n")
    found = imports_of(source, "aq_runtime.kernels")
    assert {"aq_runtime.quant.bits", "aq_runtime.export.pipeline"} <= found
    edges = {"aq_runtime.kernels.probe": {t for t in found if t.startswith("aq_runtime")}}
    assert upward(edges) == ["aq_runtime.kernels.probe -> aq_runtime.export.pipeline",
                             "aq_runtime.kernels.probe -> aq_runtime.export.pipeline.g"]
