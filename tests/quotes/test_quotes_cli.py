"""The CLI and repair_quotes on bad input: exit code 2 and one line naming the problem; weights."""
import json

import numpy as np
import pandas as pd
import pytest

from core.cli import main
from core.quotes.workflow import repair_quotes
from core.repairers.weights import WeightsError
from tests.quotes.quote_cases import MALFORMED, csv_bytes, good_chain


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_cli_malformed_file_exits_2_with_one_line(tmp_path, capsys, case):
    data, name, pattern = MALFORMED[case]
    path = tmp_path / name
    path.write_bytes(data)
    code = main(["repair", str(path), "--method", "interp", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    import re
    assert re.search(pattern, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["empty file", "vols above 5 after percent reading", "single expiry", "dates in the wrong order"])
def test_api_malformed_raises_value_error(case):
    data, name, pattern = MALFORMED[case]
    with pytest.raises(ValueError, match=pattern):
        repair_quotes(data, method="interp", name=name)


def test_cli_help_explains_columns(capsys):
    with pytest.raises(SystemExit) as info:
        main(["repair", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for word in ("expiry + valuation_date", "strike + forward", "price + type", "bid, ask", "--method",
                 "200,000 rows", "50 MiB"):
        assert word in out


@pytest.mark.parametrize("argv, pattern", [
    (["repair", "q.csv", "--method", "krig", "--out", "o"], r"invalid choice: 'krig'"),
    (["repair", "q.csv"], r"required: --out"),
    (["repair", "missing.csv", "--out", "o"], r"quote file not found"),
    (["repair", "missing.csv", "--out", "o", "--method", "svi", "--weights", "w.pt"], r"--weights applies to"),
])
def test_cli_bad_options(tmp_path, capsys, monkeypatch, argv, pattern):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    import re
    assert re.search(pattern, err), err


def test_strict_fails_on_dropped_rows(tmp_path, capsys):
    df = good_chain()[["T", "strike", "forward", "iv"]]
    df.loc[3, "iv"] = -1.0
    path = tmp_path / "q.csv"
    df.to_csv(path, index=False)
    assert main(["repair", str(path), "--out", str(tmp_path / "o"), "--strict", "--no-stale"]) == 2
    assert "--strict: 1 row(s) dropped, first reason: iv <= 0 (1 row(s), first row 4)" in capsys.readouterr().err
    assert main(["repair", str(path), "--out", str(tmp_path / "o"), "--no-stale", "--quiet"]) == 0


def test_output_directory_problems(tmp_path, capsys):
    df = good_chain()[["T", "strike", "forward", "iv"]]
    path = tmp_path / "q.csv"
    df.to_csv(path, index=False)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["repair", str(path), "--out", str(blocker), "--no-stale"]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["cnn", "best"])
@pytest.mark.parametrize("content", [None, b"not a checkpoint"])
def test_missing_or_corrupt_weights_clear_message_and_baselines_still_work(tmp_path, capsys, content, method):
    df = good_chain()[["T", "strike", "forward", "iv"]]
    path = tmp_path / "q.csv"
    df.to_csv(path, index=False)
    weights = tmp_path / f"{method}.pt"
    if content is not None:
        weights.write_bytes(content)
    code = main(["repair", str(path), "--method", method, "--weights", str(weights), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert ("not found" if content is None else "corrupt") in err
    assert "baselines (interp, svi, interp_svi) still work" in err
    with pytest.raises(WeightsError, match="baselines"):
        repair_quotes(csv_bytes(df), method=method, name="q.csv", weights=str(weights))
    for method in ("interp", "svi"):
        assert main(["repair", str(path), "--method", method, "--out", str(tmp_path / method), "--quiet"]) == 0


def test_outputs_contents(tmp_path):
    df = good_chain(seed=8, stale_fraction=0.05)
    path = tmp_path / "q.csv"
    df[["T", "strike", "forward", "iv", "bid", "ask"]].to_csv(path, index=False)
    assert main(["repair", str(path), "--method", "svi", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    grid = pd.read_parquet(tmp_path / "o" / "grid.parquet")
    assert len(grid) == 221 and set(grid.columns) >= {"T", "k", "iv", "sd", "method", "observed"}
    assert (grid["method"] == "svi").all() and np.isfinite(grid["iv"]).all() and (grid["iv"] > 0).all()
    w = (grid["iv"] ** 2 * grid["T"]).to_numpy().reshape(13, 17)
    assert (np.diff(w, axis=0) >= -1e-12).all()
    q = pd.read_csv(tmp_path / "o" / "quotes.csv")
    assert len(q) == len(df)
    for col in ("row", "status", "reason", "T", "k", "iv", "iv_repaired", "residual", "stale_score", "stale_flag"):
        assert col in q.columns
    used = q["status"] == "used"
    np.testing.assert_allclose(q.loc[used, "residual"], q.loc[used, "iv"] - q.loc[used, "iv_repaired"])
    assert q.loc[~used, "stale_flag"].eq(False).all()
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["method"] == "svi" and report["report"]["n_rows"] == len(df)
    assert report["stale"]["n_flagged"] == int(q["stale_flag"].sum())


def test_full_arbitrage_projection_option(tmp_path):
    from core.engine.arbitrage import butterfly_violations, calendar_violations
    df = good_chain(seed=9)[["T", "strike", "forward", "iv"]]
    path = tmp_path / "q.csv"
    df.to_csv(path, index=False)
    assert main(["repair", str(path), "--method", "interp", "--arbitrage", "full", "--out", str(tmp_path / "o"),
                 "--no-stale", "--format", "csv", "--quiet"]) == 0
    grid = pd.read_csv(tmp_path / "o" / "grid.csv")
    w = (grid["iv"] ** 2 * grid["T"]).to_numpy().reshape(13, 17)
    assert not butterfly_violations(w).any() and not calendar_violations(w).any()


def test_quotes_on_one_grid_row_are_repaired_by_every_method():
    # two expiries, both nearest the T = 1.52 node: every quoted node lies on one row (no triangle)
    rows = "".join(f"{T},{k},0.2\n" for T in (1.50, 1.55) for k in (-0.2, -0.1, 0.0, 0.1, 0.2))
    data = ("T,k,iv\n" + rows).encode()
    for method in ("interp", "interp_svi", "svi"):
        out = repair_quotes(data, method=method, name="q.csv")
        assert np.isfinite(out.result.iv).all() and (out.result.iv > 0).all(), method
