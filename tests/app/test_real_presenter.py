"""The Benchmark page's real-chain table (ui.presenters.real): lowest per row, plain losses, bad files."""
import json

import pytest

from ui.presenters.real import load_real, losses, rmse_frame


def _summary(mean):
    return {"rmse": {"mean": mean, "se": 0.0001}}


RESULT = {"config": {"methods": ["a", "b"]},
          "chains": {"x": {"protocols": {"random": {"a": _summary(0.0010), "b": _summary(0.0012)},
                                         "wing": {"a": _summary(0.0050), "b": _summary(0.0030)}}},
                    "y": {"protocols": {"random": {"a": _summary(0.00100), "b": _summary(0.00104)}}}}}


def test_rmse_frame_marks_the_lowest_in_vol_points():
    frame = rmse_frame(RESULT)
    assert list(frame["lowest"]) == ["a", "b", "a"]
    assert frame.loc[0, "a"] == pytest.approx(0.10) and frame.loc[1, "protocol"] == "wing"


def test_losses_name_the_cells_where_a_method_is_beaten_by_more_than_5_percent():
    assert losses(RESULT, "a") == ["x, wing: a 0.50 vol points against b 0.30"]
    # 20 % worse is a loss; 4 % worse (chain y) counts as within 5 % of the lowest
    assert losses(RESULT, "b") == ["x, random 20 %: b 0.12 vol points against a 0.10"]


def test_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_real(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="unreadable"):
        load_real(tmp_path / "bad.json")
    (tmp_path / "empty.json").write_text(json.dumps({"config": {}}))
    with pytest.raises(ValueError, match="lack"):
        load_real(tmp_path / "empty.json")
    (tmp_path / "ok.json").write_text(json.dumps(RESULT))
    assert load_real(tmp_path / "ok.json")["config"]["methods"] == ["a", "b"]


def test_the_bare_surface_error_is_named_where_it_differs_from_the_quote_prediction():
    from ui.presenters.real import surface_only

    quoted = {"rmse": {"mean": 0.0010, "se": None}, "surface_rmse": {"mean": 0.0015, "se": None}}
    same = {"rmse": {"mean": 0.0012, "se": None}, "surface_rmse": {"mean": 0.0012, "se": None}}
    result = {"config": {"methods": ["a", "b"]}, "chains": {"x": {"protocols": {"random": {"a": quoted, "b": same}}}}}
    assert "x 0.15" in surface_only(result, "a")
    assert surface_only(result, "b") is None
    assert surface_only(RESULT, "a") is None          # older JSON without surface_rmse


def test_the_subsampled_methods_are_named():
    from ui.presenters.real import sampled

    new = {"config": {"methods": ["svi_gp", "ah", "cnn"], "sampled": ["ah", "cnn", "vae"], "sampled_draws": 3,
                      "sampled_max_expiries": 4}}
    # vae was not run: only the methods in the run are named
    assert sampled(new) == "ah, cnn scored on a subsample: 3 random draws and 4 hidden expiries (their cells' " \
                           "standard errors are wider)."
    old = {"config": {"methods": ["ah", "svi_gp"], "ah_draws": 3, "ah_max_expiries": 4}}
    assert sampled(old).startswith("ah scored on a subsample: 3 random draws and 4 hidden expiries")
    assert sampled({"config": {"methods": ["svi_gp"], "sampled": [], "sampled_draws": 3}}) is None
    assert sampled(RESULT) is None
