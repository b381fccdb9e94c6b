"""``python -m core.benchmark``: the benchmark command (core.evaluation.benchmark), kept at this path
because scripts and outside checks call it."""
from core.evaluation.benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())
