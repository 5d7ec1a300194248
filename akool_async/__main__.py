"""``python -m akool_async``: the ``akool-async`` command line."""

from __future__ import annotations

from ._cli import main

raise SystemExit(main())
