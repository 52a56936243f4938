"""Shared CLI plumbing: user errors print one line on stderr and exit 2, never a traceback."""

from __future__ import annotations

import sys
from typing import Callable

from .. import AqError


def require(extra: str, command: str) -> None:
    """Before a command parses its arguments: if a package of install extra `extra` is missing,
    one line naming the extra, exit 2 (the command's modules import those packages)."""
    from ..optional import require_extra
    try:
        require_extra(extra, command)
    except AqError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def run_cli(fn: Callable[[], int | None], hard_exit: bool = False) -> None:
    """Run a CLI body: AqError -> one line, exit 2; Ctrl-C -> exit 130. `hard_exit` ends the
    process without interpreter finalization (output flushed first): torch's gloo worker
    threads can abort the process (SIGABRT) while Python tears down, after the work is done
    and the process group destroyed; the data-parallel trainer uses it."""
    try:
        code = fn() or 0
    except AqError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        code = 130
    if hard_exit:
        import os
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
