"""The schedule of kernels/tvm_cuda/compute.py's functions: one thread per output element, or
per TILE output channels of a pixel for one-group int convs (compute.out_tile: each input value
a thread loads feeds TILE accumulators); the output's loops fused, then split into blocks of 128
threads; each reduction ("acc*" blocks) runs
inside its thread into a register accumulator, then the thread requantizes and stores. Outputs are
laid out with x fastest, so a warp reads neighbouring pixels (coalesced) and shares a weight row.
On the GPU the two loops bind to blockIdx.x / threadIdx.x; on the CPU (`gpu=False`, used to test
the very same loop structure without a GPU) the outer loop runs in parallel."""

from __future__ import annotations

from typing import Any

THREADS = 128
REDUCTIONS = ("acc", "acc_p", "acc_n")


def schedule(func: Any, gpu: bool = True, tile: int = 1) -> Any:
    from tvm import s_tir
    sch = s_tir.Schedule(func)
    out = sch.get_sblock("out")
    loops = sch.get_loops(out)
    if tile > 1:  # (b, o, y, x) -> (b, o/tile, y, x | o % tile): a thread owns `tile` channels
        b, o, y, x = loops
        oo, oi = sch.split(o, [None, tile])
        sch.reorder(b, oo, y, x, oi)
        loops = [b, oo, y, x]
    bx, tx = sch.split(sch.fuse(*loops), factors=[None, THREADS])
    if gpu:
        sch.bind(bx, "blockIdx.x")
        sch.bind(tx, "threadIdx.x")
    else:
        sch.parallel(bx)
    for name in REDUCTIONS:
        try:
            blk = sch.get_sblock(name)
        except Exception:  # this op has no such reduction
            continue
        sch.compute_at(blk, tx)
        for i in range(len(sch.get(blk).writes)):  # a tiled conv's block has `tile` outputs
            sch.set_scope(blk, i, "local")
        loops = sch.get_loops(blk)
        if len(loops) > 2:  # (bx, tx, reduction loops...): zero the accumulator first
            try:
                sch.decompose_reduction(blk, loops[2])
            except Exception:  # bindings TVM cannot prove affine (a predicated split): the
                pass  # init then stays a first-iteration branch, same result
    if tile > 1:
        sch.unroll(sch.get_loops(out)[-1])
    return sch.mod["main"]
