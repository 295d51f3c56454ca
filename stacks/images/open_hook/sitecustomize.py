"""Loaded by every Python process of a traced replica (this directory is put on its PYTHONPATH
by `stacks.images.read_order`): logs each file the process opens, imports included, with the
time, to one file per process under $IMAGE_TRACE_OPENS. Nothing else changes in the process.
"""

import os
import sys
import time

_DIR = os.environ.get("IMAGE_TRACE_OPENS")

if _DIR:
    _LOG = open(os.path.join(_DIR, f"{os.getpid()}.log"), "a", buffering=1)  # noqa: SIM115

    def _opened(event: str, args: tuple) -> None:
        # `open` is raised by open(), io.open_code() (every import) and os.open().
        if event == "open" and args and isinstance(args[0], str):
            _LOG.write(f"{time.time():.6f} {os.path.abspath(args[0])}\n")

    sys.addaudithook(_opened)
