"""Stale-quote scores and flags on quotes, the calibration file, and a method's own stale_score."""
import json

import numpy as np
import pytest

from core.evaluation import stale_study
from core.quotes import stale
from core.quotes.gridding import grid_quotes
from core.quotes.workflow import repair_quotes
from core.repairers import classical
from core.repairers import registry as methods_mod
from tests.quotes.quote_cases import good_chain


def _chain_with_outliers(seed=11, shifts=(0.03, -0.04, 0.05)):
    df = good_chain(seed=seed)[["T", "strike", "forward", "iv"]].copy()
    inside = df.index[(df["T"] > 0.3) & (df["T"] < 1.8) & (np.abs(np.log(df["strike"] / df["forward"])) < 0.25)]
    picks = np.random.default_rng(seed).choice(inside, size=len(shifts), replace=False)
    df.loc[picks, "iv"] += np.array(shifts)
    return df, picks


@pytest.mark.parametrize("method", ["svi", "cnn", "best"])
def test_gross_outliers_get_the_top_scores_and_are_flagged(method):
    df, picks = _chain_with_outliers()
    out = repair_quotes(df, method=method)
    q = out.quote_table
    top = q["stale_score"].nlargest(len(picks)).index
    assert set(top) == set(picks)
    assert q.loc[picks, "stale_flag"].all()
    own = method == "best"          # best has its own stale_score, used per quote
    assert out.stale_basis == ("best" if own else "interp-leave-out")
    # a clean chain flags few quotes: the calibrated rate is 2 %
    clean = repair_quotes(good_chain(seed=12)[["T", "strike", "forward", "iv"]], method=method)
    assert clean.quote_table["stale_flag"].mean() < 0.08


def test_leave_out_residual_is_against_a_repair_without_the_quote():
    df, picks = _chain_with_outliers(shifts=(0.05,))
    out = repair_quotes(df, method="interp")
    q = out.quote_table
    i = picks[0]
    # the leave-out repair does not follow the shifted quote; the in-sample repair partly does
    assert abs(q.loc[i, "iv"] - q.loc[i, "iv_leave_out"]) > 0.04
    assert abs(q.loc[i, "iv"] - q.loc[i, "iv_leave_out"]) > abs(q.loc[i, "residual"])


def test_calibration_file_is_there_and_sane():
    data = json.loads(stale.CALIBRATION_JSON.read_text())
    assert data["target_false_flag_rate"] == 0.02
    det = data["detectors"]["interp-leave-out"]
    assert 1.0 < det["threshold"] < 20 and 0.5 < det["auc"] <= 1 and abs(det["false_flag_rate"] - 0.02) < 0.005
    # calibration seeds are disjoint from every benchmark seed
    from core.evaluation.benchmark import TEST_CELLS
    test_seeds = {s for c in TEST_CELLS for s in (c.surface_seed, c.mask_seed, c.noise_seed, c.stale_seed)}
    assert not test_seeds & {seed * 100 + i for _, seed in stale_study.STALE_CALIBRATION_CHAINS for i in range(100)}
    assert stale.threshold_for("interp-leave-out") == (det["threshold"], True)
    assert "best" in data["detectors"] and data["detectors"]["best"]["basis"] == "method"
    assert stale.threshold_for("no-such-method") == (stale.DEFAULT_THRESHOLD, False)


class _OwnScore(classical.InterpRepairer):
    """A test method with its own stale_score: the absolute in-sample residual in w."""

    name = "own_score"
    has_stale_score = True

    def predict(self, w_obs, observed):
        pred = super().predict(w_obs, observed)
        pred.stale = np.abs(w_obs - pred.w) + np.where(observed, 1e-9 * np.arange(w_obs[0].size).reshape(w_obs.shape[1:]), 0)
        return pred


def test_a_methods_own_stale_score_is_used(monkeypatch):
    monkeypatch.setitem(methods_mod.REPAIRERS, "own_score", _OwnScore)
    monkeypatch.setattr("core.quotes.workflow.METHODS", tuple(methods_mod.REPAIRERS))
    df = good_chain(seed=13)[["T", "strike", "forward", "iv"]]
    out = repair_quotes(df, method="own_score")
    assert out.stale_basis == "own_score" and not out.stale_calibrated
    assert any("not calibrated" in line for line in out.summary_lines())
    assert np.isfinite(out.quote_table.loc[out.quote_table["status"] == "used", "stale_score"]).all()


def test_node_scores_shape_and_nan_on_missing():
    w_obs, obs, is_stale = stale_study.stale_cell_data("shifted_ssvi", "regular", 9001, 9002, 9003, 3)
    sc = stale.node_scores(methods_mod.get_repairer("svi"), w_obs, obs)
    assert sc.shape == obs.shape and np.isnan(sc[~obs]).all() and np.isfinite(sc[obs]).all()


def test_quote_scores_nan_when_too_few_nodes_remain():
    T = np.array([0.24, 0.24, 0.72, 0.72])
    k = np.array([0.0, 0.1125, 0.0, 0.1125])
    iv = np.full(4, 0.2)
    g = grid_quotes(T, k, iv)
    sc = stale.quote_scores(methods_mod.get_repairer("interp"), g, T, k, iv)
    assert np.isnan(sc["score"]).all()
