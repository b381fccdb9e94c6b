"""Tables of the real-chain benchmark (core.evaluation.real) as plain text and Markdown."""
from __future__ import annotations

PROTOCOL_LABELS = {"random": "random 20 %", "wing": "wing", "expiry": "expiry"}


def _cell(summary: dict | None, key: str = "rmse", digits: int = 4) -> str:
    if not summary or summary[key]["mean"] is None:
        return "-"
    s = summary[key]
    se = f" ± {s['se']:.{digits}f}" if s["se"] is not None else ""
    return f"{s['mean']:.{digits}f}{se}"


def _best(row: dict) -> set:
    scores = {m: s["rmse"]["mean"] for m, s in row.items() if s and s["rmse"]["mean"] is not None}
    if not scores:
        return set()
    low = min(scores.values())
    return {m for m, v in scores.items() if v <= low * 1.0000001}


def rmse_table(result: dict, markdown: bool = False) -> str:
    """Held-out RMSE (vol), mean ± SE, per chain x protocol (rows) and method (columns); the
    lowest in each row marked with *."""
    methods = result["config"]["methods"]
    lines = []
    if markdown:
        lines.append("| chain | protocol | " + " | ".join(methods) + " |")
        lines.append("|---|---|" + "---|" * len(methods))
    else:
        lines.append(f"{'chain':16s} {'protocol':12s} " + " ".join(f"{m:>17s}" for m in methods))
    for chain, info in result["chains"].items():
        for protocol, row in info["protocols"].items():
            best = _best(row)
            cells = []
            for m in methods:
                text = _cell(row.get(m))
                if m in best:
                    text = f"**{text}**" if markdown else text + "*"
                cells.append(text)
            if markdown:
                lines.append(f"| {chain} | {PROTOCOL_LABELS[protocol]} | " + " | ".join(cells) + " |")
            else:
                lines.append(f"{chain:16s} {PROTOCOL_LABELS[protocol]:12s} " + " ".join(f"{c:>17s}" for c in cells))
    return "\n".join(lines)


def side_table(result: dict, markdown: bool = False) -> str:
    """Per chain and method: the bare surface's RMSE and the inside bid-ask share (random
    protocol), dense-check violations (all protocols, summed) / fits, and seconds per fit (random
    protocol)."""
    methods = result["config"]["methods"]
    head = ["chain", "measure"] + list(methods)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] if markdown else \
        [f"{'chain':16s} {'measure':22s} " + " ".join(f"{m:>10s}" for m in methods)]
    for chain, info in result["chains"].items():
        rows = {"surface-only RMSE (random)": [], "inside bid-ask (random)": [], "cov 80 / 95 % (random)": [],
                "dense violations/fits": [], "seconds per fit": []}
        for m in methods:
            rnd = info["protocols"].get("random", {}).get(m)
            all_p = [info["protocols"][p].get(m) for p in info["protocols"]]
            all_p = [s for s in all_p if s]
            # the bare surface's own error (no quote offset): differs from the RMSE table for svi_gp only
            surf = (rnd.get("surface_rmse") or {}).get("mean") if rnd else None
            rows["surface-only RMSE (random)"].append("-" if surf is None else f"{surf:.4f}")
            inside = rnd["inside_bid_ask"]["mean"] if rnd else None
            rows["inside bid-ask (random)"].append("-" if inside is None else f"{inside:.2f}")
            c80, c95 = (rnd.get("cov80"), rnd.get("cov95")) if rnd else (None, None)
            rows["cov 80 / 95 % (random)"].append("-" if c80 is None else f"{c80:.2f}/{c95:.2f}")
            rows["dense violations/fits"].append(
                f"{sum(s['dense_violations'] for s in all_p)}/{sum(s['n_fits'] for s in all_p)}")
            sec = rnd["seconds_per_fit"] if rnd else None
            rows["seconds per fit"].append("-" if sec is None else f"{sec:.2f}")
        for label, cells in rows.items():
            if markdown:
                lines.append(f"| {chain} | {label} | " + " | ".join(cells) + " |")
            else:
                lines.append(f"{chain:16s} {label:22s} " + " ".join(f"{c:>10s}" for c in cells))
    return "\n".join(lines)


def errors_text(result: dict) -> str:
    out = [f"{name}: not loaded: {msg}" for name, msg in result.get("load_errors", {}).items()]
    for chain, info in result["chains"].items():
        for protocol, row in info["protocols"].items():
            for m, s in row.items():
                if s and s["errors"]:
                    out.append(f"{chain} {protocol} {m}: {len(s['errors'])} failed fit(s), e.g. {s['errors'][0]}")
    return "\n".join(out)


def format_tables(result: dict) -> str:
    parts = ["Held-out RMSE in implied vol, mean ± SE over draws / hidden expiries (* lowest in the row)",
             rmse_table(result), "", side_table(result)]
    errs = errors_text(result)
    if errs:
        parts += ["", errs]
    parts.append(f"\ntotal {result['seconds']['total']:.0f} s")
    return "\n".join(parts)
