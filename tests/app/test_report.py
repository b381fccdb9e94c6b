"""ui.presenters.report: reading the benchmark JSON and the weights manifest, torch-free; the lazy core API."""
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT
from ui.presenters import report


@pytest.fixture(scope="module")
def shipped():
    return report.load_benchmark()


def test_report_and_the_grid_import_without_torch():
    # the method list does not load torch either; the first learned method used does
    code = ("import sys, ui.presenters.report, core; assert 'torch' not in sys.modules, 'torch was imported'; "
            "core.METHODS; assert 'torch' not in sys.modules, 'the method list imported torch'; "
            "from core.repairers.registry import repairer_class; repairer_class('best'); assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_lazy_core_api_is_the_public_api():
    import core
    from core import METHODS, repair
    from core.pipeline import repair as api_repair
    from core.repairers.registry import METHODS as methods

    assert repair is api_repair and METHODS == methods and core.repair is api_repair
    assert {"repair", "METHODS", "T_GRID", "K_GRID"} <= set(dir(core))
    with pytest.raises(AttributeError):
        core.no_such_name  # noqa: B018


def test_default_paths_match_the_engine():
    from core.evaluation.benchmark import DEFAULT_JSON
    from core.settings import WEIGHTS_DIR

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
    from core.evaluation.benchmark import best_in_row

    for key in ("rmse", "downstream_svi"):
        rows, bold = report.score_table(shipped, key)
        assert len(rows) == len(bold) == len(shipped["cells"])
        for cell, row, flags in zip(shipped["cells"], rows, bold):
            assert {m for m in cell[key] if flags[m]} == set(best_in_row(cell[key]))
            for m, score in cell[key].items():
                assert row[m] == f"{100 * score['mean']:.2f} ± {100 * score['se']:.2f}"   # vol points
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
    first = shipped["cells"][0]["diagnostics_by_method"]
    assert report.sd_methods(shipped) == [m for m in methods if "cov80" in first[m]]
    assert {"cnn", "best"} <= set(report.sd_methods(shipped))
    assert len(rows) == len(shipped["cells"]) * len(report.sd_methods(shipped))
    for row in rows:
        cell = next(c for c in shipped["cells"] if report.cell_label(c) == row["cell"])
        d = cell["diagnostics_by_method"][row["method"]]
        for key, title in report.UNCERTAINTY_COLUMNS.items():
            assert row[title] == pytest.approx(d[key])
    series = report.score_series(shipped)
    assert set(series) == set(methods)
    assert series["cnn"]["mean"][3] == shipped["cells"][3]["rmse"]["cnn"]["mean"]
    rows, bold = report.metric_table(shipped, "stale_auc")
    for cell, row, flags in zip(shipped["cells"], rows, bold):
        aucs = {m: d["stale_auc"] for m, d in cell["diagnostics_by_method"].items()}
        assert {m for m in aucs if flags[m]} == {max(aucs, key=aucs.get)}
        assert row["best"] == pytest.approx(aucs["best"])


def test_scores_in_vol_points_with_the_tables_decimals():
    assert report._fmt_score({"mean": 0.0138, "se": 0.00083}) == "1.38 ± 0.08"
    assert report._fmt_score({"mean": 0.00166, "se": 0.0000313}) == "0.17 ± 0.00"
    assert report._fmt_score({"mean": 0.0138, "se": float("nan")}) == "1.38"
    assert report._fmt_score({"mean": float("nan"), "se": 0.1}) == "—"


def test_err_sd_points(shipped):
    details = report.cell_details(shipped, 3)
    points = report.err_sd_points(details)
    assert set(points) == set(details["err_sd_sample"])
    p = points["cnn"]
    assert p["sd_max"] == pytest.approx(max(details["err_sd_sample"]["cnn"]["sd"]))
    assert 0 < p["sd_min"] <= p["sd_max"]
    assert p["q"] == pytest.approx({0.8: 1.281552, 0.95: 1.959964})
    assert 0 <= p["above80"] <= 1 and p["above95"] <= p["above80"]
    # A method's own multipliers (conformal for "best") set its edges.
    own = report.err_sd_points(details, {"best": {0.8: 1.3, 0.95: 2.1}})["best"]
    sd, err = np.array(details["err_sd_sample"]["best"]["sd"]), np.array(details["err_sd_sample"]["best"]["abs_err"])
    assert own["above95"] == pytest.approx(np.mean(err > 2.1 * sd)) and own["q"][0.8] == 1.3
    assert report.cell_details({"cells": [{}]}, 0) == {}


# ----------------------------------------------------------------------------- does "best" win?

def row(**scores):
    return {m: {"mean": mean, "se": se} for m, (mean, se) in scores.items()}


def test_method_verdict_statuses():
    wins = report.method_verdict(row(best=(0.002, 0.0001), interp=(0.010, 0.001), svi=(0.02, 0.001)))
    assert wins["status"] == "wins" and wins["runner_up"] == "interp"
    assert wins["gap"] == pytest.approx(0.008) and wins["gap_se"] == pytest.approx(8.0)
    assert wins["text"].startswith("best wins by more than one SE: 0.20 ± 0.01 against 1.00 ± 0.10")
    tied = report.method_verdict(row(best=(0.010, 0.001), svi=(0.0105, 0.0008)), label=str.upper)
    assert tied["status"] == "tied" and "does not win by more than one SE" in tied["text"] and "SVI" in tied["text"]
    tied_above = report.method_verdict(row(best=(0.0105, 0.001), svi=(0.010, 0.001)))
    assert tied_above["status"] == "tied" and "higher by 0.05 vol pts" in tied_above["text"]
    loses = report.method_verdict(row(best=(0.03, 0.001), svi=(0.02, 0.001), interp=(0.025, 0.001)))
    assert loses["status"] == "loses" and loses["runner_up"] == "svi"
    assert "does not win: svi is lower by more than one SE" in loses["text"]
    assert report.method_verdict(row(svi=(0.02, 0.001)))["status"] == "absent"
    only = report.method_verdict(row(best=(0.02, 0.001), svi=(0.01, 0.001)), rivals=("interp",))
    assert only["status"] == "wins" and only["runner_up"] is None


def test_verdict_summary_says_where_best_does_not_win():
    cells = [{"family": "sabr_event", "mask": m, "rmse": r} for m, r in (
        ("regular", row(best=(0.002, 0.0001), svi=(0.01, 0.001))),
        ("adversarial", row(best=(0.03, 0.001), svi=(0.02, 0.001))))]
    verdicts = report.best_verdicts(cells, label=str.title)
    assert [v["status"] for v in verdicts] == ["wins", "loses"]
    assert [v["label"] for v in verdicts] == ["SABR-event / regular", "SABR-event / adversarial"]
    assert report.verdict_summary(verdicts, label=str.title) == (
        "Best does not win by more than one SE in 1 of 2 cells: SABR-event / adversarial (beaten by Svi).")
    assert report.verdict_summary(verdicts[:1]) == "best wins every cell (1 of 1) by more than one SE."


def test_shipped_verdicts_follow_the_tie_rule(shipped):
    from core.evaluation.benchmark import best_in_row

    for cell, v in zip(shipped["cells"], report.best_verdicts(shipped)):
        others = {m: s for m, s in cell["rmse"].items() if m != "best"}
        beats_all = all(s["mean"] - cell["rmse"]["best"]["mean"] > max(s["se"], cell["rmse"]["best"]["se"])
                        for s in others.values())
        assert (v["status"] == "wins") == beats_all
        assert (v["status"] == "loses") == ("best" not in best_in_row(cell["rmse"]))


# ----------------------------------------------------------------------------- projections, coverage, LOFO

def test_projection_rows_and_notes(shipped):
    rows = report.projection_rows(shipped)
    assert len(rows) == len(shipped["cells"]) * len(report.result_methods(shipped))
    first = shipped["cells"][0]
    best = next(r for r in rows if r["method"] == "best" and r["cell"] == report.cell_label(first))
    d = first["diagnostics_by_method"]["best"]
    assert best["default"] == "full" and best["rmse_full"] == first["rmse_full"]["best"]["mean"]
    assert best["full_minus_calendar"] == pytest.approx(
        first["rmse_full"]["best"]["mean"] - first["rmse_calendar"]["best"]["mean"])
    assert (best["g_raw"], best["g_calendar"], best["g_full"], best["calendar_after_full"]) == (
        d["g_negative_raw"], d["g_negative"], d["g_negative_full"], d["calendar_full"])
    assert next(r for r in rows if r["method"] == "interp")["default"] == "calendar"
    notes = report.projection_notes(shipped, str.upper)
    assert len(notes) == len(report.result_methods(shipped)) + 1
    assert any(n.startswith("BEST: the full projection") for n in notes)
    assert notes[-1].startswith("After the full projection no method has a g(k) < 0 node")


def test_coverage_notes():
    cells = [{"family": "sabr_event", "mask": "regular",
              "diagnostics_by_method": {"good": {"cov80": 0.79, "cov95": 0.94}, "bad": {"cov80": 0.5, "cov95": 0.7}}},
             {"family": "sabr_event", "mask": "adversarial",
              "diagnostics_by_method": {"good": {"cov80": 0.82, "cov95": 0.96}, "bad": {"cov80": 0.79, "cov95": 0.95}}}]
    good, bad = report.coverage_notes(cells)
    assert good == "good: coverage within 3 points of nominal in every cell (80 %: 79.0–82.0 %; 95 %: 94.0–96.0 %)."
    assert bad.startswith("bad: coverage is not nominal in 1 of 2 cells") and "too narrow" in bad
    assert bad.endswith("Off in: SABR-event / regular.")


def test_lofo_table_and_notes(shipped):
    blocks = report.lofo_blocks(shipped)
    assert [b["held_out"] for b in blocks] == ["ssvi", "sabr_event", "heston"]
    rows, bold = report.lofo_table(shipped)
    assert len(rows) == sum(len(b["cells"]) for b in blocks)
    cell = blocks[1]["cells"][0]
    r = rows[2]
    assert r["held out"] == "SABR-event" and r["cell"] == report.cell_label(cell)
    assert r["best_lofo"] == report._fmt_score(cell["rmse"]["best_lofo"])
    assert r["interp"] == report._fmt_score(cell["rmse"]["interp"])
    assert r["cov80"] == cell["diagnostics_by_method"]["best_lofo"]["cov80"]
    # Bold among the models that never saw the held-out family: "best" (trained on it) is never bold.
    fair = {m: v for m, v in cell["rmse"].items() if m != "best"}
    assert {m for m, b in bold[2].items() if b} == set(report.best_in_row(fair))
    assert not any(b.get("best") for b in bold), "the model that saw the family is never bold"
    notes = report.lofo_notes(shipped, str.title)
    assert len(notes) == 3
    for block, note in zip(blocks, notes):
        for c in block["cells"]:   # each cell judged on its own against the 3-point band
            d = c["diagnostics_by_method"]["best_lofo"]
            nominal = abs(d["cov80"] - 0.8) <= 0.03 and abs(d["cov95"] - 0.95) <= 0.03
            shown = f"{report.cell_label(c)} ({d['cov80']:.3f} / {d['cov95']:.3f})"
            assert shown in note
            good, _, bad = note.partition("not nominal in")
            assert (shown in good) == nominal and (shown in bad) == (not nominal)
    heston = notes[2]   # 0.791 / 0.947 is inside the band: called nominal (issue 12, item 8)
    assert "nominal, within 3 points of 0.80 / 0.95, in Heston / regular" in heston
    errors = report.lofo_notes({"lofo": [{"held_out": "heston", "error": "no weights best_lofo_heston.pt"}]})
    assert errors == ["Heston held out: not run — no weights best_lofo_heston.pt."]
    assert report.lofo_blocks({"cells": []}) == [] and report.lofo_table({"cells": []}) == ([], [])


def test_outside_table_and_notes(shipped):
    cells = report.outside_cells(shipped)
    assert {c["family"] for c in cells} >= {"merton_jump", "lognormal_mixture"}
    rows, bold = report.outside_table(shipped)
    assert len(rows) == len(cells)
    for c, r, b in zip(cells, rows, bold):
        assert r["cell"] == report.cell_label(c) and r["best"] == report._fmt_score(c["rmse"]["best"])
        classical = min(c["rmse"][m]["mean"] for m in report.LOFO_BASELINES)
        assert r["× classical"] == pytest.approx(c["rmse"]["best"]["mean"] / classical)
        assert {m for m, v in b.items() if v} == set(report.best_in_row(c["rmse"]))
    notes = report.outside_notes(shipped, str.title)
    off = [c for c in cells if abs(c["diagnostics_by_method"]["best"]["cov80"] - 0.8) > 0.03
           or abs(c["diagnostics_by_method"]["best"]["cov95"] - 0.95) > 0.03]
    for c in cells:
        assert (report.cell_label(c) in notes[-1]) == (c in off)
    # Best made to lose one cell: the first note says so and names the winner
    lost = json.loads(json.dumps(shipped))
    c = lost["outside"][0]
    c["rmse"]["best"] = {"mean": c["rmse"]["interp"]["mean"] + 0.01, "se": 0.0001}
    first = report.outside_notes(lost, str.title)[0]
    assert "does not win" in first and report.cell_label(c) in first
    assert report.outside_notes({"cells": []}) == [] and report.outside_table({}) == ([], [])


def test_best_manifest_tables():
    manifest = report.read_manifest(report.best_weights_path())
    facts = report.best_manifest_summary(manifest)
    assert facts["fit time (s)"] == manifest["fit_seconds"]
    assert facts["prior components"] == ", ".join(manifest["components"])
    rows = report.validation_rows(manifest)
    assert [r["cell"] for r in rows][:2] == ["Shifted SSVI / regular", "Shifted SSVI / adversarial"]
    first = manifest["validation"]["shifted_ssvi/regular"]
    assert rows[0]["cov95"] == first["cov95"] and rows[0]["rmse"] == report._fmt_score(first["rmse_full"])
    conformal = report.conformal_rows(manifest)
    q95 = next(r for r in conformal if r["level"] == 0.95)
    assert q95["q"] == manifest["conformal"]["quantiles"]["0"]["0.95"] and q95["gaussian_z"] == pytest.approx(1.959964)
    assert report.weights_path("best") == report.best_weights_path() and report.weights_path("interp") is None
