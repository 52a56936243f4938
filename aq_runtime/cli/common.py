"""Shared CLI plumbing: user errors print one line on stderr and exit 2, never a traceback."""

from __future__ import annotations

import sys
from typing import Callable

from .. import AqError


def run_cli(fn: Callable[[], int | None]) -> None:
    try:
        code = fn() or 0
    except AqError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
