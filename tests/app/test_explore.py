"""ui.presenters.explore: the single-surface helpers behind the repair explorer, and the benchmark run."""
import numpy as np
import pytest

import core
from core.engine.arbitrage import butterfly_violations
from core.engine.grid import K_GRID, T_GRID, iv_to_w
from core.synth.families import generate
from core.synth.missingness import make_masks
from ui.presenters import explore

MISSING_WEIGHTS = "/nonexistent/cnn.pt"


@pytest.mark.parametrize("family", list(explore.FAMILY_LABELS))   # every family the explorer offers
@pytest.mark.parametrize("seed", [0, 7, 123])
def test_sample_surface_is_the_generator(family, seed):
    iv = explore.sample_surface(family, seed)
    np.testing.assert_allclose(iv_to_w(iv), generate(family, 1, seed)[0], rtol=1e-12)


@pytest.mark.parametrize("family", explore.SSVI_FAMILIES)
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_ssvi_parameters_reproduce_the_draw_and_move_the_surface(family, seed):
    params = explore.ssvi_parameters(family, seed)
    assert set(params) == set(explore.SSVI_PARAMS)
    for name, value in params.items():
        low, high = explore.SSVI_PARAM_BOUNDS[name]
        assert low <= value <= high
    # The seed's own parameters, passed explicitly, give the generator's surface (bump included).
    np.testing.assert_allclose(explore.sample_surface(family, seed, params), explore.sample_surface(family, seed),
                               rtol=1e-12)
    steeper = explore.sample_surface(family, seed, {"rho": -0.85})
    left, right = steeper[:, 0] - steeper[:, 8], explore.sample_surface(family, seed)[:, 0] - \
        explore.sample_surface(family, seed)[:, 8]
    assert (left > right).all(), "a more negative rho must raise the left wing relative to ATM"


def test_sample_surface_rejects_bad_names():
    with pytest.raises(ValueError, match="unknown surface family"):
        explore.sample_surface("bates", 0)
    with pytest.raises(ValueError, match="unknown SSVI parameter"):
        explore.sample_surface("ssvi", 0, {"kappa": 1.0})
    with pytest.raises(ValueError, match="not an SSVI family"):
        explore.ssvi_parameters("sabr_event", 0)


def test_check_truth_names_the_bad_cell():
    good = explore.sample_surface("sabr_event", 3)
    assert explore.check_truth(good).shape == (13, 17)
    cases = [(np.nan, "cell at T=0.72, k=-0.338 is empty or not a number"), (-0.1, "vol -0.1 at .* <= 0"),
             (0.0, "<= 0"), (25.0, "above 2")]
    for value, message in cases:
        bad = good.copy()
        bad[4, 2] = value
        with pytest.raises(ValueError, match=message) as info:
            explore.check_truth(bad)
        assert f"T={T_GRID[4]:.2f}" in str(info.value) and f"k={K_GRID[2]:+.3f}" in str(info.value)
    text = good.astype(object)
    text[0, 0] = "abc"
    with pytest.raises(ValueError, match="'abc' at T=0.08, k=-0.450 is not a number"):
        explore.check_truth(text)
    with pytest.raises(ValueError, match="13 x 17"):
        explore.check_truth(good[:5])


@pytest.mark.parametrize("regime, low, high", [("regular", 0.40, 0.62), ("adversarial", 0.10, 0.28)])
def test_sample_mask_density(regime, low, high):
    density = np.mean([explore.sample_mask(regime, s).mean() for s in range(40)])
    assert low < density < high
    assert explore.sample_mask("none", 0).all()
    np.testing.assert_array_equal(explore.sample_mask(regime, 5), make_masks(regime, 1, 5)[0])


def test_mask_presets_erase_what_they_say():
    full = np.ones((13, 17), bool)
    assert not explore.apply_preset(full, "Drop left wing")[:, K_GRID < -explore.WING_K].any()
    assert explore.apply_preset(full, "Drop left wing")[:, K_GRID >= -explore.WING_K].all()
    assert not explore.apply_preset(full, "Drop right wing")[:, K_GRID > explore.WING_K].any()
    assert not explore.apply_preset(full, "Drop front maturities")[T_GRID <= explore.FRONT_T].any()
    assert not explore.apply_preset(full, "Drop long maturities")[T_GRID >= explore.LONG_T].any()
    mask = explore.sample_mask("regular", 3)
    for name in explore.MASK_PRESETS:
        out = explore.apply_preset(mask, name)
        assert out.dtype == bool and out.shape == (13, 17)
        if name.startswith("Drop"):
            assert not (out & ~mask).any(), f"{name} must only erase quotes"
    stripe = explore.apply_preset(mask, "Drop a broker stripe")
    lost = mask.sum(1) - stripe.sum(1)
    assert (lost > 0).sum() == 1 and lost.max() == mask.sum(1).max()
    assert not stripe[np.argmax(lost)].any()
    assert explore.apply_preset(mask, "Quote every cell").all()
    assert not explore.apply_preset(mask, "Clear every cell").any()
    with pytest.raises(ValueError, match="unknown mask preset"):
        explore.apply_preset(mask, "Drop everything")


def test_check_mask_refuses_masks_without_enough_quotes():
    with pytest.raises(ValueError, match="hides every cell"):
        explore.check_mask(np.zeros((13, 17), bool))
    few = np.zeros((13, 17), bool)
    few[0, :3] = True
    with pytest.raises(ValueError, match="leaves 3 quote"):
        explore.check_mask(few)
    assert explore.check_mask(explore.sample_mask("adversarial", 1)).dtype == bool


def test_quotes_are_noisy_truth_on_observed_cells():
    iv = explore.sample_surface("shifted_ssvi", 2)
    mask = explore.sample_mask("regular", 2)
    exact = explore.quotes(iv, mask, 0.0, 9)
    np.testing.assert_allclose(exact[mask], iv[mask], rtol=1e-12)
    assert np.isnan(exact[~mask]).all()
    noisy = explore.quotes(iv, mask, 18.0, 9)
    spread = np.abs(noisy - iv)[mask]
    assert 0 < np.median(spread) < 0.01
    np.testing.assert_array_equal(noisy, explore.quotes(iv, mask, 18.0, 9))
    with pytest.raises(ValueError, match="noise"):
        explore.quotes(iv, mask, -1.0, 9)


@pytest.fixture(scope="module")
def view():
    d = explore.DEFAULT_VIEW
    iv = explore.sample_surface(d["family"], d["surface_seed"])
    mask = explore.sample_mask(d["regime"], d["mask_seed"])
    return explore.score_surface(iv, explore.quotes(iv, mask, d["noise_bp"], d["mask_seed"]))


def test_score_surface_scores_every_method(view):
    assert set(view.methods) == set(core.METHODS) and not view.errors
    missing = ~view.observed
    for m, v in view.methods.items():
        expected = core.repair(view.iv_obs, m)
        np.testing.assert_allclose(v.iv, expected.iv)
        np.testing.assert_allclose(v.abs_err, np.abs(expected.iv - view.iv_true))
        assert v.rmse_missing == pytest.approx(np.sqrt(np.mean((expected.iv - view.iv_true)[missing] ** 2)))
        assert v.post_calendar == 0.0 and 0 <= v.raw_calendar <= 1 and 0 <= v.g_negative <= 1
        assert v.g.shape == (13, 15) and v.g_violation.shape == (13, 15)
        assert v.g_negative == pytest.approx(v.g_violation.mean())
        assert (v.sd is not None) == (expected.sd is not None)
    assert view.n_quoted == view.observed.sum() and 0 < view.quoted_fraction < 0.3


def test_verdict_ranks_by_missing_point_rmse(view):
    verdict = view.verdict()
    scores = {m: v.rmse_missing for m, v in view.methods.items()}
    ordered = sorted(scores, key=scores.get)
    assert verdict["winner"] == ordered[0] and verdict["runner_up"] == ordered[1]
    assert verdict["ratio"] == pytest.approx(scores[ordered[1]] / scores[ordered[0]])
    assert verdict["gap"] == pytest.approx(scores[ordered[1]] - scores[ordered[0]])


def test_nothing_missing_ranks_by_all_cell_rmse():
    iv = explore.sample_surface("ssvi", 1)
    full = explore.score_surface(iv, explore.quotes(iv, np.ones((13, 17), bool), 18.0, 1), ("interp", "svi"))
    assert full.score_name == "rmse_all" and np.isnan(full.methods["interp"].rmse_missing)
    assert full.verdict()["score_name"] == "rmse_all"


def test_slices_carry_bands_for_methods_with_sd(view):
    smile = view.smile(2)
    assert np.array_equal(smile["x"], K_GRID) and smile["truth"].shape == (17,)
    np.testing.assert_array_equal(smile["quote_x"], K_GRID[view.observed[2]])
    for m, line in smile["methods"].items():
        if view.methods[m].sd is None:
            assert "lower" not in line
        else:
            assert (line["lower"] < line["iv"]).all() and (line["iv"] < line["upper"]).all()
            np.testing.assert_allclose(line["upper"] - line["lower"], 2 * view.methods[m].half_width[2])
            assert line["band"] == view.methods[m].band
    term = view.term_structure(8)
    assert np.array_equal(term["x"], T_GRID) and term["truth"].shape == (13,)
    k, t = view.quote_points()
    assert len(k) == len(t) == view.n_quoted


def test_bands_are_each_methods_own_calibrated_interval(view):
    from core.repairers.registry import get_repairer

    assert view.band_level == explore.BAND_LEVEL == 0.95
    missing = ~view.observed
    for m, v in view.methods.items():
        if v.sd is None:
            assert v.half_width is None and v.band is None and np.isnan(v.band_coverage)
            continue
        np.testing.assert_allclose(v.half_width, get_repairer(m).half_width(v.sd, 0.95))
        assert v.band_coverage == pytest.approx(np.mean(v.abs_err[missing] <= v.half_width[missing]))
        np.testing.assert_array_equal(v.outside_band, v.abs_err > v.half_width)
    assert view.methods["cnn"].band == "±1.96 sd (Gaussian 95 %) band"
    assert view.methods["best"].band == "conformal 95 % band"
    # Best's conformal multiplier is the calibrator's, not the Gaussian z.
    q = get_repairer("best").calibrator.quantiles[0][0.95]
    np.testing.assert_allclose(view.methods["best"].half_width, q * view.methods["best"].sd)
    assert explore.interval_multiplier("best", 0.8) == pytest.approx(get_repairer("best").calibrator.quantiles[0][0.8])
    assert explore.interval_multiplier("cnn", 0.95) == pytest.approx(1.959964, abs=1e-6)
    k, t = view.outside_band_points("cnn")
    assert len(k) == int((view.methods["cnn"].outside_band & missing).sum())


def test_projection_choices_and_defaults(view):
    assert explore.projection_choices() == ("default", "calendar", "full")
    assert explore.default_projection("best") == "full" and explore.default_projection("interp") == "calendar"
    label = explore.projection_label("default", ("interp", "best"), str.upper)
    assert label == "method default (calendar; full for BEST)"
    assert explore.projection_label("default", ("interp", "svi")) == "method default (calendar)"
    # None / "default": each method's own projection; raw and projected rates are both reported.
    for m, v in view.methods.items():
        assert v.projection == explore.default_projection(m)
        assert v.g_negative_raw == pytest.approx(np.mean(butterfly_violations(iv_to_w(v.iv_raw))))
    full = explore.score_surface(view.iv_true, view.iv_obs, ("interp", "best"), "full")
    assert {v.projection for v in full.methods.values()} == {"full"}
    assert all(v.g_negative == 0 and v.post_calendar == 0 for v in full.methods.values())
    np.testing.assert_allclose(full.methods["interp"].iv, core.repair(view.iv_obs, "interp", arbitrage="full").iv)
    calendar = explore.score_surface(view.iv_true, view.iv_obs, ("best",), "calendar")
    assert calendar.methods["best"].projection == "calendar"


def test_stale_scores_and_flags(view):
    from core.repairers.registry import get_repairer

    best = view.methods["best"]
    w_obs = np.where(view.observed, iv_to_w(np.nan_to_num(view.iv_obs, nan=1.0)), 0.0)
    expected = get_repairer("best").predict(w_obs[None], view.observed[None]).stale[0]
    np.testing.assert_allclose(best.stale[view.observed], expected[view.observed])
    assert np.isnan(best.stale[~view.observed]).all()
    assert view.methods["interp"].stale is None and view.stale_summary("interp") is None
    from core.quotes.stale import threshold_for

    assert explore.STALE_FLAG_LLR == threshold_for("best")[0], "one threshold for Best's score, from core"
    np.testing.assert_array_equal(best.stale_flagged, np.nan_to_num(best.stale, nan=-np.inf) > explore.STALE_FLAG_LLR)
    # Quotes made stale on purpose: the label follows, and the flags are scored against it.
    iv_obs, is_stale = explore.stale_quotes(view.iv_obs, 10)
    assert is_stale.sum() >= 1 and not is_stale[~view.observed].any()
    moved = np.abs(iv_obs - view.iv_obs)[is_stale]
    assert (moved >= 0.0050 - 1e-12).all() and (moved <= 0.0110 + 1e-12).all()
    np.testing.assert_array_equal(iv_obs[~is_stale & view.observed], view.iv_obs[~is_stale & view.observed])
    regular = explore.sample_mask("regular", 4)
    iv = explore.sample_surface("shifted_ssvi", 4)
    quotes, truth = explore.stale_quotes(explore.quotes(iv, regular, 18.0, 4), 4, fraction=0.15)
    out = explore.score_surface(iv, quotes, ("best",), stale_truth=truth)
    summary = out.stale_summary("best")
    flagged = out.methods["best"].stale_flagged
    assert summary["injected"] == truth.sum() and summary["caught"] == (flagged & truth).sum()
    assert summary["false"] == (flagged & ~truth & out.observed).sum() and summary["quotes"] == regular.sum()
    assert summary["caught"] >= 1, "a 50-110 bp move among 18 bp noise on a regular mask is found"
    k, t = out.stale_points("best", "injected")
    assert len(k) == truth.sum()


def test_missing_weights_leave_the_baselines_running(view):
    out = explore.score_surface(view.iv_true, view.iv_obs, core.METHODS, weights=MISSING_WEIGHTS)
    assert "cnn" in out.errors and "not found" in out.errors["cnn"]
    assert set(out.methods) == set(core.METHODS) - {"cnn"}
    status = explore.weights_status("cnn", MISSING_WEIGHTS)
    assert not status["available"] and "not found" in status["message"]
    assert explore.weights_status("cnn")["available"] and explore.weights_status("best")["available"]
    best = explore.weights_status("best", "/nonexistent/best.pt")
    assert not best["available"] and "not found" in best["message"]


def test_missing_best_weights_leave_the_others_running(view, monkeypatch):
    from ui.presenters import report

    monkeypatch.setenv(report.BEST_WEIGHTS_ENV, "/nonexistent/best.pt")
    out = explore.score_surface(view.iv_true, view.iv_obs, ("best", "interp"))
    assert "best" in out.errors and "not found" in out.errors["best"] and set(out.methods) == {"interp"}


def test_a_broken_method_is_reported_not_raised(view, monkeypatch):
    from core.repairers import registry as methods

    class Broken(methods.Repairer):
        name = "broken"

        def predict(self, w_obs, observed):
            raise RuntimeError("diverged")

    monkeypatch.setitem(methods.REPAIRERS, "broken", Broken)
    out = explore.score_surface(view.iv_true, view.iv_obs, ("interp", "broken"))
    assert out.errors == {"broken": "RuntimeError: diverged"} and set(out.methods) == {"interp"}


def test_score_surface_refuses_bad_input(view):
    with pytest.raises(ValueError, match="hides every cell"):
        explore.score_surface(view.iv_true, np.full((13, 17), np.nan))
    bad = view.iv_true.copy()
    bad[0, 0] = -1
    with pytest.raises(ValueError, match="<= 0"):
        explore.score_surface(bad, view.iv_obs)


def test_arbitrage_modes_follow_core_repair():
    modes = explore.arbitrage_modes()
    assert modes[0] == "calendar"
    probe = np.full((13, 17), np.nan)
    probe[::3, ::4] = 0.2
    try:
        core.repair(probe, "interp", arbitrage="full")
        accepts_full = True
    except ValueError:
        accepts_full = False
    assert ("full" in modes) == accepts_full


def test_run_benchmark_reports_progress_and_skips_what_cannot_run():
    calls = []
    result = explore.run_benchmark(3, ("interp", "svi", "cnn"), MISSING_WEIGHTS,
                                   progress=lambda done, total, label: calls.append((done, total, label)))
    assert [c[0] for c in calls] == [1, 2, 3, 4] and all(c[1] == 4 for c in calls)
    assert "cnn" in result["skipped"] and set(result["cells"][0]["rmse"]) == {"interp", "svi"}
    assert result["config"]["n_test"] == 3
    with pytest.raises(ValueError, match="at least 2"):
        explore.run_benchmark(1)
    with pytest.raises(ValueError, match="no method can run"):
        explore.run_benchmark(3, ("cnn",), MISSING_WEIGHTS)


def test_vol_range_is_the_robust_spread_of_truth_and_quotes(view):
    from ui.scales import robust_range

    low, high = view.vol_range()
    both = np.r_[view.iv_true.ravel(), view.iv_obs[view.observed]]
    assert (low, high) == pytest.approx(robust_range(both))
    assert both.min() <= low < high <= both.max()
