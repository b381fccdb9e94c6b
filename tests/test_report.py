"""core.report: reading the benchmark JSON and the weights manifest, torch-free; the lazy core API."""
import json
import subprocess
import sys

import numpy as np
import pytest

from core import report
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def shipped():
    return report.load_benchmark()


def test_report_and_the_grid_import_without_torch():
    code = ("import sys, core.report, core; assert 'torch' not in sys.modules, 'torch was imported'; "
            "core.METHODS; assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_lazy_core_api_is_the_public_api():
    import core
    from core import METHODS, repair
    from core.api import repair as api_repair
    from core.methods import METHODS as methods

    assert repair is api_repair and METHODS == methods and core.repair is api_repair
    assert {"repair", "METHODS", "T_GRID", "K_GRID"} <= set(dir(core))
    with pytest.raises(AttributeError):
        core.no_such_name  # noqa: B018


def test_default_paths_match_the_engine():
    from core.benchmark import DEFAULT_JSON
    from core.model import WEIGHTS_DIR

    assert report.DEFAULT_JSON == DEFAULT_JSON and report.DEFAULT_WEIGHTS == WEIGHTS_DIR / "cnn.pt"


def test_paths_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(report.WEIGHTS_ENV, str(tmp_path / "w.pt"))
    monkeypatch.setenv(report.RESULTS_ENV, str(tmp_path / "r.json"))
    assert report.cnn_weights_path() == tmp_path / "w.pt"
    assert report.benchmark_json_path() == tmp_path / "r.json"
    monkeypatch.delenv(report.WEIGHTS_ENV)
    assert report.cnn_weights_path() == report.DEFAULT_WEIGHTS


def test_bad_results_files_give_one_line_reasons(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        report.load_benchmark(tmp_path / "none.json")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        report.load_benchmark(corrupt)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"cells": []}))
    with pytest.raises(ValueError, match="no cells"):
        report.load_benchmark(empty)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"cells": [{"family": "sabr_event"}]}))
    with pytest.raises(ValueError, match="lacks mask, rmse"):
        report.load_benchmark(partial)


def test_manifest(tmp_path):
    manifest = report.read_manifest()
    facts = report.manifest_summary(manifest)
    assert facts["best validation RMSE (vol)"] == manifest["best_val_rmse_iv"]
    assert "1600" in facts["training data"]
    with pytest.raises(ValueError, match="manifest not found"):
        report.read_manifest(tmp_path / "cnn.pt")


def test_headline_orders_by_mean_and_marks_the_json_best(shipped):
    for cell, row in zip(shipped["cells"], report.headline(shipped)):
        means = [cell["rmse"][e["method"]]["mean"] for e in row["entries"]]
        assert means == sorted(means)
        assert {e["method"] for e in row["entries"] if e["best"]} == set(cell["best"])
        assert row["label"] == report.cell_label(cell)


def test_score_tables_bold_the_best_and_ties(shipped):
    from core.benchmark import best_in_row

    for key in ("rmse", "downstream_svi"):
        rows, bold = report.score_table(shipped, key)
        assert len(rows) == len(bold) == len(shipped["cells"])
        for cell, row, flags in zip(shipped["cells"], rows, bold):
            assert {m for m in cell[key] if flags[m]} == set(best_in_row(cell[key]))
            for m, score in cell[key].items():
                assert row[m] == f"{score['mean']:.4f} ± {score['se']:.4f}"
            assert flags["cell"] == row["cell"]


def test_tie_rule_in_a_synthetic_row():
    result = {"cells": [{"family": "sabr_event", "mask": "regular", "observed_fraction": 0.5,
                         "rmse": {"a": {"mean": 0.010, "se": 0.001}, "b": {"mean": 0.0109, "se": 0.0005},
                                  "c": {"mean": 0.0125, "se": 0.001}}}]}
    _, bold = report.score_table(result)
    assert bold[0]["a"] and bold[0]["b"] and not bold[0]["c"]


def test_diagnostics_table_and_series(shipped):
    rows = report.diagnostics_table(shipped)
    methods = report.result_methods(shipped)
    assert len(rows) == len(shipped["cells"]) * len(methods)
    cnn = [r for r in rows if r["method"] == "cnn"][0]
    assert cnn["cov80"] == pytest.approx(shipped["cells"][0]["diagnostics_by_method"]["cnn"]["cov80"])
    assert cnn["raw cal %"] == pytest.approx(100 * shipped["cells"][0]["diagnostics_by_method"]["cnn"]["raw_calendar"])
    interp = [r for r in rows if r["method"] == "interp"][0]
    assert np.isnan(interp["cov80"])
    series = report.score_series(shipped)
    assert set(series) == set(methods)
    assert series["cnn"]["mean"][3] == shipped["cells"][3]["rmse"]["cnn"]["mean"]


def test_err_sd_points(shipped):
    details = report.cell_details(shipped, 3)
    points = report.err_sd_points(details)
    assert set(points) == set(details["err_sd_sample"])
    p = points["cnn"]
    assert p["sd_max"] == pytest.approx(max(details["err_sd_sample"]["cnn"]["sd"]))
    assert 0 <= p["above80"] <= 1 and p["above95"] <= p["above80"]
    assert report.cell_details({"cells": [{}]}, 0) == {}
