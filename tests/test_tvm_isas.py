"""The TVM CPU kernels on every instruction set: compiled for each target (cross-compiling
where this CPU lacks it) the GEMM uses that instruction set's dot product (AVX-512 VNNI zmm
`vpdpbusd`, AVX-VNNI ymm `vpdpbusd`, AVX2 `vpmaddubsw` + `vpmaddwd`, aarch64 `sdot`); and run
on every instruction set this CPU has, the committed golden models give the committed logit
hashes (the default one runs in the rest of the suite)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tvm")

EXPECT = {  # instruction set -> (mnemonics that must appear, that must not)
    "avx512_vnni": ((r"vpdpbusd\s+%?zmm",), ()),
    "avx_vnni": ((r"vpdpbusd\s+%?ymm",), (r"zmm",)),
    "avx2": ((r"vpmaddubsw", r"vpmaddwd"), (r"zmm", r"vpdpbusd")),
    "neon_dot": ((r"\bsdot\b",), ()),
}


@pytest.mark.parametrize("isa", list(EXPECT))
def test_gemm_compiles_to_the_instruction_sets_dot_product(isa):
    import tvm

    from aq_runtime.kernels.tvm.gemm import _fused_func
    from aq_runtime.kernels.tvm.target import llvm_target
    f = _fused_func(64, 1, 4, 1, 64, "uint8", isa=isa)
    asm = tvm.compile(tvm.IRModule({"main": f}), target=llvm_target(isa)).mod.inspect_source("asm")
    must, must_not = EXPECT[isa]
    for pat in must:
        assert re.search(pat, asm), (isa, pat)
    for pat in must_not:
        assert not re.search(pat, asm), (isa, pat)


def test_every_instruction_set_of_this_cpu_gives_the_golden_logits(tmp_path):
    from aq_runtime.kernels.tvm.target import isa, missing_features, supported_isas
    if missing_features():
        pytest.skip("no AVX2 on this CPU: the tvm backend cannot run here")
    others = [i for i in supported_isas() if i != isa()]
    tests = Path(__file__).parent
    for name in others:
        env = dict(os.environ, AQ_TVM_ISA=name, AQ_CACHE_DIR=str(tmp_path / name))
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(tests / "test_golden_logits.py")], capture_output=True,
                           text=True, env=env, cwd=tests.parent, timeout=900)
        assert r.returncode == 0, (name, r.stdout[-3000:])
