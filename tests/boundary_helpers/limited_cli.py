"""Run ``python -m akool_async`` with files limited to N bytes (writes past it: EFBIG).

Usage: ``python limited_cli.py N ARGS...``. Python ignores SIGXFSZ, so a write past the
limit is an ``OSError`` (EFBIG) in the CLI, like a disk that filled up under it.
"""

from __future__ import annotations

import resource
import sys

from akool_async._cli import main

if __name__ == "__main__":
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sys.exit(main(sys.argv[2:]))
