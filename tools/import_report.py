"""What the chain importer makes of every chain file in a folder (a measurement, not a test).

    python -m tools.import_report ../shared/real

Prints one markdown row per file: the layout detected, quotes read and kept, the drop reasons with
counts, and, for a raw file whose converted twin is in the folder above (same underlying and
date), the largest relative gap between our parity forwards and the twin's ``forward`` column.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.quotes.chain_import import import_chain  # noqa: E402

# raw file -> converted twin, for the parity check (the shared folder's own pairing)
TWINS = {"cboe_spx_quotedata_20220610.csv": "spx_20220610.csv", "luisseoanes_AAPL_options.csv": "aapl_20250926.csv"}


def forward_gap(chain, twin: Path) -> float:
    """Largest |F_ours / F_twin - 1| over the twin's expiries (NaN when an expiry is missing)."""
    expiry_of_T = chain.table.groupby("T")["expiry"].first()
    ours = chain.forwards.assign(expiry=chain.forwards["T"].map(expiry_of_T)).set_index("expiry")["forward"]
    theirs = pd.read_csv(twin).groupby("expiry")["forward"].first()
    return float(np.max(np.abs(ours.reindex(theirs.index) / theirs - 1)))


def rows(folder: Path) -> list:
    files = sorted(folder.glob("*.csv")) + sorted((folder / "raw").glob("*")) if (folder / "raw").is_dir() \
        else sorted(folder.glob("*.csv"))
    out = []
    for path in files:
        chain = import_chain(path)
        rep = chain.report
        twin = TWINS.get(path.name)
        gap = f"{100 * forward_gap(chain, folder / twin):.4f} %" if twin and (folder / twin).exists() else ""
        drops = "; ".join(f"{reason.split(' (')[0]}: {count}" for reason, count in rep.drops.items()) or "none"
        out.append((path.relative_to(folder).as_posix(), rep.layout, rep.n_quotes, rep.n_used, drops, gap))
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0]) if argv else ROOT / ".." / "shared" / "real"
    print("| file | layout | quotes read | kept | dropped (reason: count) | parity F vs converted (max) |")
    print("|---|---|---|---|---|---|")
    for name, layout, n, kept, drops, gap in rows(folder):
        print(f"| {name} | {layout} | {n} | {kept} | {drops} | {gap} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
