"""``python -m core.batch INPUT --out DIR`` is ``python -m core.cli batch INPUT --out DIR``."""
import sys

from core.cli import main

if __name__ == "__main__":
    sys.exit(main(["batch", *sys.argv[1:]]))
