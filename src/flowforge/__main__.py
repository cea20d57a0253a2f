"""``python -m flowforge``: the command line."""

from __future__ import annotations

from flowforge.cli.main import main

if __name__ == "__main__":
    main()
