"""Corrupted vendor files: every one loads or ends in a one-line ValueError, with no warning noise."""
from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import pytest

from core.quotes.read import read_quotes

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "layouts"
JUNK = ["", "nan", "inf", "-1", "0", "abc", "1e308", "-0", "2025-13-45", "NaT", "  ", "1e-300", "C", "X",
        "9999-12-31", "0,5", "5%", "04/03/2025", "2025-06-20T00:00:00+05:00"]
# A fast profile for CI; IMPORT_FUZZ_CASES=20000 for the long run (one quarter per seed below).
N_CASES = int(os.environ.get("IMPORT_FUZZ_CASES", "120"))


def _corrupt(rng: random.Random, path: Path) -> bytes:
    lines = path.read_text().split("\n")
    start = 4 if path.name == "cboe_quotedata.csv" else 6 if path.suffix == ".txt" else 1
    for _ in range(rng.randint(1, 30)):
        i = rng.randrange(start, max(start + 1, len(lines) - 1))
        if i < len(lines):
            cells = lines[i].split(",")
            cells[rng.randrange(len(cells))] = rng.choice(JUNK)
            lines[i] = ",".join(cells)
    if rng.random() < 0.2:
        lines = lines[:rng.randint(1, len(lines))]
    return "\n".join(lines).encode()


@pytest.mark.parametrize("seed", range(4))
def test_corrupted_layout_files_load_or_refuse_in_one_line(seed):
    rng = random.Random(seed)
    files = sorted(FIXTURES.iterdir())
    outcomes = {"loaded": 0, "refused": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for _ in range(N_CASES // 4):
            path = rng.choice(files)
            try:
                read_quotes(_corrupt(rng, path), name=path.name)
                outcomes["loaded"] += 1
            except ValueError as exc:
                assert "\n" not in str(exc) and len(str(exc)) < 500, str(exc)
                outcomes["refused"] += 1
    assert outcomes["loaded"] > 0           # most corruptions drop rows, not whole files
