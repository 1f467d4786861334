"""Ending a process that has used the lake.

delta-rs' native runtime threads can still be alive while the interpreter finalizes and abort it
("terminate called without an active exception", exit status 134; delta-io/delta-rs#2184), about one
exit in ten on this machine, after all the work is done and written. Commands that read or write the
lake therefore end through `exit_now`, which flushes the standard streams and skips finalization.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def exit_now(status: int) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
