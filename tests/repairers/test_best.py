"""The estimator "best": exact Gaussian inference, calibrated intervals, stale scores, arbitrage-free output."""
import numpy as np
import pytest
import torch

import core
from core.engine.arbitrage import butterfly_violations, calendar_violations
from core.engine.conformal import ConformalCalibrator
from core.engine.grid import w_to_iv
from core.evaluation.metrics import auc
from core.repairers import best
from core.repairers.weights import WeightsError
from core.synth.families import generate
from core.synth.missingness import inject_stale, make_masks, noise_sd_iv, observe

# Fresh seeds: disjoint from training (>= 100000), calibration (60001+), validation (50001+) and test.
FRESH = 71000


@pytest.fixture(scope="module")
def tiny_prior():
    cfg = best.BestConfig(families=("shifted_ssvi", "sabr_event"), n_default=3000, rank=12, seed=123456,
                          surprise_inflation=False)
    return best.MixturePrior.fit(cfg)


def test_posterior_mean_and_sd_equal_dense_gaussian_conditioning(tiny_prior):
    """One component, no generic block: the Woodbury posterior equals textbook conditioning."""
    comp = best.MixturePrior(tiny_prior.mu[:1], tiny_prior.V[:1], tiny_prior.tau2[:1], np.ones(1), tiny_prior.cfg)
    w = generate("shifted_ssvi", 2, seed=FRESH)
    observed = make_masks("adversarial", 2, seed=FRESH)
    iv_obs = observe(w, observed, seed=FRESH)
    out = comp.run(np.nan_to_num(iv_obs), observed)
    mu, V, tau2 = (x.double().numpy() for x in (comp.mu[0], comp.V[0], comp.tau2[0]))
    prior_cov = V @ V.T + tau2 * np.eye(221)
    noise = (noise_sd_iv() ** 2).ravel()
    for i in range(2):
        o = observed[i].ravel()
        y = np.nan_to_num(iv_obs[i]).ravel()[o]
        S = prior_cov[np.ix_(o, o)] + np.diag(noise[o])
        gain = prior_cov[:, o] @ np.linalg.inv(S)
        mean = mu + gain @ (y - mu[o])
        var = np.diag(prior_cov - gain @ prior_cov[o, :])
        miss = ~o
        # the implementation keeps the isotropic remainder out of the mean (it only matters at quotes)
        np.testing.assert_allclose(out["mean"][i].ravel()[miss], mean[miss], atol=2e-4)
        np.testing.assert_allclose(out["sd"][i].ravel()[miss], np.sqrt(var[miss]), rtol=2e-2)


def test_leave_one_out_residual_matches_a_refit(tiny_prior):
    w = generate("sabr_event", 1, seed=FRESH + 1)
    observed = make_masks("regular", 1, seed=FRESH + 1)
    iv_obs = np.nan_to_num(observe(w, observed, seed=FRESH + 1))
    comp = best.MixturePrior(tiny_prior.mu[1:2], tiny_prior.V[1:2], tiny_prior.tau2[1:2], np.ones(1),
                             tiny_prior.cfg)
    out = comp.run(iv_obs, observed)
    cell = tuple(np.argwhere(observed[0])[5])
    without = observed.copy()
    without[(0,) + cell] = False
    refit = comp.run(iv_obs, without)
    d = comp.noise_var.double().numpy().reshape(13, 17)[cell] + float(comp.tau2[0])
    loo_sd = np.sqrt(refit["sd"][(0,) + cell] ** 2 + d - float(comp.tau2[0]))
    z = (iv_obs[(0,) + cell] - refit["mean"][(0,) + cell]) / loo_sd
    assert out["loo_z"][(0,) + cell] == pytest.approx(z, rel=2e-2, abs=2e-3)


def test_surprise_inflation_widens_only_surfaces_the_prior_explains_badly(tiny_prior):
    import dataclasses

    inflated = tiny_prior.with_noise(tiny_prior.cfg.noise_bp)
    inflated.cfg = dataclasses.replace(tiny_prior.cfg, surprise_inflation=True)
    w = generate("shifted_ssvi", 40, FRESH + 5)
    observed = make_masks("regular", 40, FRESH + 5)
    calm = np.nan_to_num(observe(w, observed, FRESH + 5))
    rough = np.nan_to_num(observe(w, observed, FRESH + 5, noise_bp=90.0))   # 5x the assumed noise
    ratio_calm = inflated.run(calm, observed)["sd"] / tiny_prior.run(calm, observed)["sd"]
    ratio_rough = inflated.run(rough, observed)["sd"] / tiny_prior.run(rough, observed)["sd"]
    assert (ratio_calm >= 1 - 1e-6).all() and np.median(ratio_calm) < 1.2
    assert np.median(ratio_rough) > 2.0


def test_mixture_picks_the_generating_family(tiny_prior):
    w = np.concatenate([generate("shifted_ssvi", 50, FRESH + 2), generate("sabr_event", 50, FRESH + 3)])
    observed = make_masks("regular", 100, FRESH + 2)
    out = tiny_prior.run(np.nan_to_num(observe(w, observed, FRESH + 2)), observed)
    dominant = out["p"].argmax(1)
    assert (dominant[:50] == 0).mean() > 0.9 and (dominant[50:] == 1).mean() > 0.9


def test_repair_is_arbitrage_free_with_full_projection():
    w = generate("sabr_event", 30, FRESH + 4)
    observed = make_masks("adversarial", 30, FRESH + 4)
    res = core.repair(observe(w, observed, FRESH + 4), "best")
    assert res.arbitrage == "full"
    assert np.isfinite(res.iv).all() and (res.iv > 0).all()
    assert not calendar_violations(res.w).any() and not butterfly_violations(res.w).any()
    assert res.sd is not None and (res.sd > 0).all()


@pytest.mark.parametrize("family, regime", [("shifted_ssvi", "regular"), ("sabr_event", "adversarial")])
def test_conformal_coverage_on_a_fresh_synthetic_set(family, regime):
    """Shipped weights, fresh seeds: calibrated 80 % / 95 % intervals cover close to nominal."""
    n = 150
    w = generate(family, n, FRESH + 10)
    observed = make_masks(regime, n, FRESH + 11)
    repairer = core.repairers.registry.get_repairer("best")
    res = core.repair(observe(w, observed, FRESH + 12), "best")
    err = np.abs(res.iv - w_to_iv(w))[~observed]
    sd = res.sd[~observed]
    for level in (0.8, 0.95):
        covered = np.mean(err <= repairer.half_width(sd, level))
        assert abs(covered - level) < 0.04, (level, covered)
    # the uncalibrated Gaussian interval of the post's CNN is far off on the same data
    cnn = core.repair(observe(w, observed, FRESH + 12), "cnn")
    cnn_cov = np.mean(np.abs(cnn.iv - w_to_iv(w))[~observed] <= 1.2816 * cnn.sd[~observed])
    assert abs(cnn_cov - 0.8) > 0.08


def test_stale_score_separates_stale_quotes():
    n = 120
    w = generate("shifted_ssvi", n, FRESH + 20)
    observed = make_masks("adversarial", n, FRESH + 21)
    iv_stale, is_stale = inject_stale(observe(w, observed, FRESH + 22), seed=FRESH + 23)
    repairer = core.repairers.registry.get_repairer("best")
    w_obs = np.where(observed, np.nan_to_num(iv_stale) ** 2 * core.T_GRID[:, None], 0.0)
    score = repairer.predict(w_obs, observed).stale
    assert (score[~observed] == 0).all()
    assert auc(is_stale[observed], score[observed]) > 0.75


def test_noise_level_setting_widens_the_posterior():
    iv_obs = observe(generate("sabr_event", 5, FRESH + 30), make_masks("regular", 5, FRESH + 30), FRESH + 30)
    narrow = core.repair(iv_obs, "best").sd
    wide = core.repair(iv_obs, "best", noise_bp=60.0).sd
    assert (wide.mean() > narrow.mean() * 1.1)


def test_save_load_round_trip_and_bad_files(tmp_path, tiny_prior):
    cal = ConformalCalibrator(levels=(0.8, 0.95)).fit(np.abs(np.random.default_rng(0).normal(size=500)), np.ones(500))
    path = tmp_path / "b.pt"
    best.save(tiny_prior, cal, path, {"name": "tiny"})
    prior, calibrator, manifest = best.load(path)
    assert manifest["name"] == "tiny" and calibrator.multiplier(0.8) == cal.multiplier(0.8)
    torch.testing.assert_close(prior.V, tiny_prior.V)
    with pytest.raises(WeightsError, match="weights file not found"):
        best.load(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="corrupt"):
        best.load(tmp_path / "junk.pt")
    torch.save({"mu": torch.zeros(3)}, tmp_path / "wrong.pt")
    (tmp_path / "wrong.json").write_text(path.with_suffix(".json").read_text())
    with pytest.raises(WeightsError, match="does not fit"):
        best.load(tmp_path / "wrong.pt")


def test_the_oracle_bounds_stale_auc_and_sits_below_090_on_regular_masks():
    """Knowing the truth, the optimal stale score cannot reach 0.90 AUC on regular masks: the
    issue's 0.90 target is out of reach there for any method. Best stays below the oracle."""
    from core.evaluation.metrics import oracle_stale_scores

    n = 150
    w = generate("shifted_ssvi", n, FRESH + 40)
    observed = make_masks("regular", n, FRESH + 41)
    iv_stale, is_stale = inject_stale(observe(w, observed, FRESH + 42), seed=FRESH + 43)
    oracle = auc(is_stale[observed], oracle_stale_scores(iv_stale, w_to_iv(w), noise_sd_iv())[observed])
    w_obs = np.where(observed, np.nan_to_num(iv_stale) ** 2 * core.T_GRID[:, None], 0.0)
    best_auc = auc(is_stale[observed], core.repairers.registry.get_repairer("best").predict(w_obs, observed).stale[observed])
    assert 0.8 < oracle < 0.90
    assert best_auc <= oracle + 0.01


def test_interval_of_a_result():
    iv_obs = observe(generate("sabr_event", 3, FRESH + 50), make_masks("regular", 3, FRESH + 50), FRESH + 50)
    res = core.repair(iv_obs, "best")
    low, high = res.interval(0.95)
    assert (low < res.iv).all() and (high > res.iv).all()
    low80, high80 = res.interval(0.8)
    assert (high80 - low80 < high - low).all()
    assert core.repair(iv_obs, "interp").interval(0.95) is None


def test_few_surface_numpy_path_agrees_with_the_torch_posterior():
    """run() on up to FEW_SURFACES surfaces takes posterior_few (NumPy, no outer products): the same
    posterior as the batched torch path to float32 rounding, including the robust reweighting."""
    from core.repairers.registry import get_repairer

    prior = get_repairer("best").prior
    n = 6
    w = generate("sabr_event", n, FRESH + 40)
    observed = make_masks("adversarial", n, FRESH + 40)
    iv_obs = np.nan_to_num(observe(w, observed, FRESH + 40))
    iv_obs[0][observed[0]] = np.where(np.arange(observed[0].sum()) == 3, 3.0, iv_obs[0][observed[0]])  # one wild quote
    y = torch.from_numpy(iv_obs.reshape(n, -1).astype(np.float32))
    m = torch.from_numpy(observed.reshape(n, -1).astype(np.float32))
    ref = prior.robust_posterior(y, m)
    assert float(prior.posterior(y, m)["loo_z"][0].abs().max()) > best.ROBUST_TRIGGER   # the robust path runs
    few = prior.run(iv_obs, observed)
    assert n <= best.FEW_SURFACES
    np.testing.assert_allclose(few["mean"].reshape(n, -1), ref["mean"].double().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(few["sd"].reshape(n, -1), ref["sd"].double().numpy(), rtol=1e-2, atol=1e-5)
    np.testing.assert_allclose(few["p"], ref["p"].double().numpy(), atol=1e-4)
    np.testing.assert_allclose(few["stale"].reshape(n, -1), ref["stale"].double().numpy(), rtol=1e-4, atol=2e-3)


def _with_power(prior, power, inflation=True):
    import dataclasses

    other = prior.with_noise(prior.cfg.noise_bp)
    other.cfg = dataclasses.replace(prior.cfg, surprise_inflation=inflation, surprise_power=power)
    return other


def test_surprise_power_sets_the_strength_of_the_widening(tiny_prior):
    """sd x max(1, chi2) ** p, chi2 the reduced chi-square of the surface's leave-one-out residuals:
    p = 0 is no widening, a larger p widens more exactly where chi2 > 1, and the NumPy few-surface
    path agrees with the torch batch path at any p."""
    n = 24
    w = generate("shifted_ssvi", n, FRESH + 50)
    observed = make_masks("regular", n, FRESH + 50)
    rough_noise = np.arange(n) % 2 == 1                               # every other surface: 60 bp, not 18
    iv_obs = np.nan_to_num(np.where(rough_noise[:, None, None], observe(w, observed, FRESH + 50, noise_bp=60.0),
                                    observe(w, observed, FRESH + 50)))
    plain = tiny_prior.run(iv_obs, observed)                         # surprise_inflation False
    np.testing.assert_array_equal(_with_power(tiny_prior, 0.0).run(iv_obs, observed)["sd"], plain["sd"])
    chi2 = (plain["loo_z"] ** 2).sum((1, 2)) / observed.sum((1, 2))
    rough = chi2 > 1.0
    assert rough.sum() >= n // 3 and (~rough).sum() >= 2             # both kinds of surface are present
    previous = plain["sd"]
    for power in (0.5, 1.0, 1.25, 2.0):
        sd = _with_power(tiny_prior, power).run(iv_obs, observed)["sd"]
        np.testing.assert_allclose(sd / plain["sd"], np.broadcast_to(np.maximum(chi2, 1.0)[:, None, None] ** power,
                                                                      sd.shape), rtol=1e-4)
        assert (sd[rough] > previous[rough] * (1 + 1e-4)).all()       # strictly wider where chi2 > 1
        np.testing.assert_allclose(sd[~rough], plain["sd"][~rough], rtol=1e-6)   # untouched where chi2 <= 1
        previous = sd
    # NumPy few-surface path (n <= FEW_SURFACES per call) against the torch batch path, p = 1.25
    prior = _with_power(tiny_prior, 1.25)
    y = torch.from_numpy(iv_obs.reshape(n, -1).astype(np.float32))
    m = torch.from_numpy(observed.reshape(n, -1).astype(np.float32))
    ref = prior.robust_posterior(y, m)["sd"].double().numpy().reshape(n, 13, 17)
    few = np.concatenate([prior.run(iv_obs[s:s + 8], observed[s:s + 8])["sd"] for s in range(0, n, 8)])
    np.testing.assert_allclose(few, ref, rtol=1e-2, atol=1e-5)
    assert not np.allclose(few[rough], plain["sd"][rough], rtol=0.05)   # the comparison is of widened sds


def test_surprise_power_in_manifests(tmp_path, tiny_prior):
    """A manifest without surprise_power predates it: its weights were calibrated with the Birge
    ratio (p = 0.5). A bad value is refused in one line."""
    import json

    path = tmp_path / "b.pt"
    best.save(_with_power(tiny_prior, 1.25), None, path, {"name": "tiny"})
    assert best.load(path)[0].cfg.surprise_power == 1.25
    manifest = json.loads(path.with_suffix(".json").read_text())
    del manifest["config"]["surprise_power"]
    path.with_suffix(".json").write_text(json.dumps(manifest))
    assert best.load(path)[0].cfg.surprise_power == best.LEGACY_SURPRISE_POWER == 0.5
    for bad in (-0.5, "1", None, 99.0, True):
        manifest["config"]["surprise_power"] = bad
        path.with_suffix(".json").write_text(json.dumps(manifest))
        with pytest.raises(WeightsError, match="surprise_power"):
            best.load(path)


def test_shipped_surprise_powers_are_the_nested_choice():
    """The powers the trainer uses (and the shipped manifests record) are those the nested
    leave-one-family-out study chose (results/best_surprise_power.json), and no model's choice
    looked at its held-out family."""
    import json
    from pathlib import Path

    from core.training import best as training

    study = json.loads((Path(__file__).resolve().parents[2] / training.SURPRISE_POWER_STUDY).read_text())
    for key, power in training.SURPRISE_POWER.items():
        choice = study["choices"]["all" if key == "best" else key]
        assert choice["power"] == power
        if key != "best":
            held = {"ssvi": "shifted_ssvi"}.get(key, key)
            assert choice["pairs"] and not any(held in pair.split("->") for pair in choice["pairs"])
    assert best.BestConfig().surprise_power == training.SURPRISE_POWER["best"]
    weights = Path(__file__).resolve().parents[2] / "weights"
    for name, key in (("best", "best"), ("best_lofo_ssvi", "ssvi"), ("best_lofo_sabr_event", "sabr_event"),
                      ("best_lofo_heston", "heston")):
        manifest = json.loads((weights / f"{name}.json").read_text())
        assert manifest["config"]["surprise_power"] == manifest["surprise_power"]["p"] == training.SURPRISE_POWER[key]


def test_a_custom_family_set_does_not_claim_the_nested_choice():
    """`train best --families heston` gets the three-family p, and its manifest says it was not
    chosen for that family set (the nested study covers the shipped families only)."""
    from core.training.best import _power_record

    assert "nested" in _power_record("best", None)[1]["chosen_by"]
    p, record = _power_record("best", None, ("heston",))
    assert p == _power_record("best", None)[0] and "not chosen for these families" in record["chosen_by"]


def test_every_shipped_prior_has_the_broad_component_and_no_held_out_family():
    """The broad eSSVI component is in every shipped prior, the leave-one-family-out ones too, with
    its own seed and prior mass; a LOFO prior holds no component of its held-out family."""
    from pathlib import Path

    from core.seeds import BEST_BROAD_SEED

    weights = Path(__file__).resolve().parents[2] / "weights"
    for name, held in (("best", None), ("best_lofo_ssvi", "shifted_ssvi"), ("best_lofo_sabr_event", "sabr_event"),
                       ("best_lofo_heston", "heston")):
        prior, _, manifest = best.load(weights / f"{name}.pt")
        assert prior.cfg.broad == ("essvi_broad",) and "essvi_broad" in prior.names, name
        assert manifest["data"]["train"]["essvi_broad"] == {"n": 60000, "seed": BEST_BROAD_SEED, "broad": True}
        if held is not None:
            assert held not in prior.names and held not in manifest["data"]["train"]
            assert len(prior.names) == 2 + 1 + 2        # two families, the broad one, two family-free
        mass = float(torch.exp(prior.log_weight[prior.names.index("essvi_broad")]))
        assert mass == pytest.approx(prior.cfg.broad_weight, rel=1e-5)


def test_a_manifest_without_broad_components_loads_as_having_none(tmp_path, tiny_prior):
    import json

    path = tmp_path / "b.pt"
    best.save(tiny_prior, None, path, {"name": "tiny"})
    assert best.load(path)[0].cfg.broad == ("essvi_broad",)
    manifest = json.loads(path.with_suffix(".json").read_text())
    for key in ("broad", "broad_weight", "broad_seed"):     # as a manifest written before them
        del manifest["config"][key]
    path.with_suffix(".json").write_text(json.dumps(manifest))
    cfg = best.load(path)[0].cfg
    assert cfg.broad == () and cfg.broad_weight == 0.0
    manifest["config"]["broad"] = "essvi_broad"
    path.with_suffix(".json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="config.broad must be a list"):
        best.load(path)


def test_prior_weights_must_leave_the_families_mass():
    with pytest.raises(ValueError, match="generic_weight \\+ broad_weight below 1"):
        best.MixturePrior.fit(best.BestConfig(families=("shifted_ssvi",), n_default=200, rank=4,
                                              generic_weight=0.5, broad_weight=0.5))
    with pytest.raises(ValueError, match="at least one family"):
        best.MixturePrior.fit(best.BestConfig(families=(), n_default=200, rank=4))
