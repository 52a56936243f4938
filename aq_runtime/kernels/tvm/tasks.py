"""How the TIR kernels share their work out over TVM's thread pool: a fixed number of parallel
tasks per call, each owning a contiguous, evenly sized span of the work items (row blocks of a
GEMM, output rows of a depthwise conv)."""

from __future__ import annotations

from typing import Any

TASKS = 64  # parallel tasks per call: local buffers are set up per task, not per work item
# (a buffer declared inside the row-block loop became a workspace allocation per block, and
# its accumulators lived in memory: 2-6x slower). TVM's pool gives each thread a run of
# consecutive tasks, so the items are spread evenly over all 64 (ceil(items / 64) per task
# left the last tasks, and so the last thread, short of work: with 196 row blocks, 128 on one
# thread of two and 68 on the other)


def task_span(task: Any, total: Any) -> tuple[Any, Any]:
    """(first item, item count) of parallel task `task` of TASKS over `total` items: items
    [task * total / TASKS, (task + 1) * total / TASKS), rounded down."""
    first = task * total // TASKS
    return first, (task + 1) * total // TASKS - first
