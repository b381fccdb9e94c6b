"""The benchmark: JSON contract, tie rule, and a small-N regression with the shipped weights."""
import json
from pathlib import Path

import numpy as np
import pytest

from core.evaluation import benchmark
from core.repairers.registry import METHODS

REGRESSION = Path(__file__).with_name("regression_benchmark.json")


@pytest.fixture(scope="module")
def small_run():
    return benchmark.run(n_test=12)


def test_json_contract(small_run):
    result = json.loads(json.dumps(small_run))  # JSON-serialisable
    assert result["config"]["n_test"] == 12 and "weights" in result["config"]
    assert "total" in result["seconds"]
    assert [(c["family"], c["mask"]) for c in result["cells"]] == [
        ("shifted_ssvi", "regular"), ("shifted_ssvi", "adversarial"), ("sabr_event", "regular"),
        ("sabr_event", "adversarial")]
    for cell in result["cells"]:
        assert 0 < cell["observed_fraction"] < 1
        assert set(cell["rmse"]) == set(METHODS)
        for score in cell["rmse"].values():
            assert set(score) == {"mean", "se"} and score["mean"] > 0 and score["se"] > 0
        d = cell["diagnostics"]
        for key in ("raw_calendar", "post_calendar", "g_negative", "cov80", "cov95", "err_sd_corr", "stale_auc"):
            assert key in d
        for key in ("raw_calendar", "post_calendar", "g_negative", "cov80", "cov95", "stale_auc"):
            assert 0 <= d[key] <= 1
        assert d["post_calendar"] == 0.0
        assert {"cnn", "interp"} <= set(cell["downstream_svi"])


def test_regression_band(small_run):
    """Numbers with the shipped weights on 12 surfaces per cell, within a band.

    The expected values come from `python -m tools.make_regression` (run after any intended
    change to generators, masks, methods or weights). The band is loose enough for BLAS/thread
    differences and tight enough to catch a changed generator or mask.
    """
    expected = json.loads(REGRESSION.read_text())
    for cell in small_run["cells"]:
        key = f"{cell['family']}/{cell['mask']}"
        assert cell["observed_fraction"] == pytest.approx(expected[key]["observed_fraction"], abs=1e-9)
        for method, value in expected[key]["rmse"].items():
            assert cell["rmse"][method]["mean"] == pytest.approx(value, rel=0.03), (key, method)


def test_tie_rule():
    scores = {"a": {"mean": 0.050, "se": 0.003}, "b": {"mean": 0.052, "se": 0.001},
              "c": {"mean": 0.060, "se": 0.002}}
    assert benchmark.best_in_row(scores) == ["a", "b"]
    scores["a"]["se"] = 0.001
    assert benchmark.best_in_row(scores) == ["a"]


def test_tables_mark_the_best(small_run):
    text = benchmark.format_tables(small_run)
    assert "Missing-point RMSE" in text and "Diagnostics" in text and "Downstream" in text
    assert text.count("*") >= 8


def test_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert benchmark.main(["--n-test", "3", "--json", str(out), "--methods", "interp,svi"]) == 0
    data = json.loads(out.read_text())
    assert set(data["cells"][0]["rmse"]) == {"interp", "svi"}
    assert "Missing-point RMSE" in capsys.readouterr().out


def test_outside_section_scores_families_best_never_trained_on():
    """Issue 11: an out-of-prior check. Every outside cell is a family no shipped prior was fitted on, or
    the liquidity mask, which is none of the post's regimes; best and the classical baselines are scored."""
    from core.seeds import OUTSIDE_CELLS
    from core.synth.missingness import REGIMES

    manifest = json.loads((benchmark.WEIGHTS_DIR / "best.json").read_text())
    trained = set(manifest["data"]["train"])
    for cell in OUTSIDE_CELLS:
        assert cell.family not in trained or cell.mask not in REGIMES, cell
    out = benchmark.run_outside(n_test=4)
    assert [(c["family"], c["mask"]) for c in out] == [(c.family, c.mask) for c in OUTSIDE_CELLS]
    for c in out:
        assert set(c["rmse"]) == set(benchmark.LOFO_METHODS)
        assert all(np.isfinite(s["mean"]) and s["mean"] > 0 for s in c["rmse"].values())
        assert 0.0 <= c["diagnostics_by_method"]["best"]["cov95"] <= 1.0
    text = benchmark.format_outside(out)
    assert "merton_jump/liquidity" in text and "lognormal_mixture/adversarial" in text


def test_cli_rejects_unknown_method():
    with pytest.raises(SystemExit):
        benchmark.main(["--methods", "magic"])


def test_speed_mode(capsys):
    result = benchmark.speed(methods=("svi",), batch=50, repeats=3)
    assert result["cpu_count"] >= 1
    assert result["methods"]["svi"]["latency_ms"] > 0 and result["methods"]["svi"]["throughput_per_s"] > 0


def test_cli_leaves_the_shipped_results_alone_unless_told(tmp_path, monkeypatch):
    """Issue 12: a plain run writes the untracked out/benchmark.json; only --ship writes the tracked
    results/benchmark.json that the app shows."""
    assert benchmark.RUN_JSON.parent.name == "out" and "out/" in (benchmark.RESULTS_DIR.parent / ".gitignore").read_text()
    run_json, shipped = tmp_path / "out" / "benchmark.json", tmp_path / "results" / "benchmark.json"
    monkeypatch.setattr(benchmark, "RUN_JSON", run_json)
    monkeypatch.setattr(benchmark, "DEFAULT_JSON", shipped)
    args = ["--n-test", "3", "--methods", "interp,svi", "--no-lofo", "--no-outside"]
    assert benchmark.main(args) == 0
    assert run_json.exists() and not shipped.exists()
    assert benchmark.main(args + ["--ship"]) == 0
    assert shipped.exists()


def test_speed_chain_mode():
    """--speed-chain: a synthetic chain of about the asked size, read to outputs, timed per method."""
    result = benchmark.speed_chain(methods=("svi_fit",), rows=600, repeats=1)
    assert 400 <= result["n_quotes"] <= 900
    s = result["methods"]["svi_fit"]
    assert s["seconds"] > 0 and s["dense_ok"] and s["n_expiries"] > 10
    assert "load average" in benchmark.format_speed_chain(result)
