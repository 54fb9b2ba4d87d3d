"""`python -m vpbx`: the same command line as the `vpbx` script."""
from __future__ import annotations

from vpbx.cli import main

if __name__ == "__main__":
    main()
