"""The same battery for every registered method (in the spirit of scikit-learn's check_estimator):
a new method is checked by adding it to the registry."""
import numpy as np
import pytest

import core
from core.engine.arbitrage import MODES
from core.pipeline import run, w_observed
from core.repairers.base import Prediction, Repairer
from core.repairers.registry import DEFAULT_METHOD, REPAIRERS, get_repairer
from core.synth.families import generate
from core.synth.missingness import make_masks, observe

METHODS = tuple(REPAIRERS)


@pytest.fixture(scope="module")
def quotes():
    w = generate("shifted_ssvi", 3, 91001)
    observed = make_masks("adversarial", 3, 91002)
    return w, observe(w, observed, 91003)


@pytest.mark.parametrize("method", METHODS)
def test_declared_capabilities(method):
    cls = REPAIRERS[method]
    assert issubclass(cls, Repairer) and cls.name == method
    assert cls.default_arbitrage in MODES and cls.interval_kind in ("gaussian", "conformal")
    assert cls.needs_weights == ("weights" in cls.options)
    assert cls.models_noise == ("noise_bp" in cls.options)


@pytest.mark.parametrize("method", METHODS)
def test_unknown_and_misplaced_options_are_named(method):
    with pytest.raises(ValueError, match="no_such_option"):
        get_repairer(method, no_such_option=1)
    if not REPAIRERS[method].needs_weights:
        with pytest.raises(ValueError, match="weights"):
            get_repairer(method, weights="weights/cnn.pt")
    if not REPAIRERS[method].models_noise:
        with pytest.raises(ValueError, match="noise_bp"):
            core.repair(np.full((13, 17), 0.2), method, noise_bp=40)


@pytest.mark.parametrize("method", METHODS)
def test_predict_matches_the_declaration(method, quotes):
    _, iv_obs = quotes
    w_obs, observed = w_observed(iv_obs)
    pred = get_repairer(method).predict(w_obs, observed)
    assert isinstance(pred, Prediction) and pred.w.shape == w_obs.shape
    assert np.isfinite(pred.w).all() and (pred.w > 0).all()
    assert (pred.sd is not None) == REPAIRERS[method].has_sd
    assert (pred.stale is not None) == REPAIRERS[method].has_stale_score
    if pred.sd is not None:
        assert pred.sd.shape == w_obs.shape and np.isfinite(pred.sd).all() and (pred.sd >= 0).all()


@pytest.mark.parametrize("method", METHODS)
def test_pipeline_output_is_calendar_free_positive_and_intervals_nest(method, quotes):
    _, iv_obs = quotes
    w_obs, observed = w_observed(iv_obs)
    out = run(get_repairer(method), w_obs, observed)
    assert out.mode == REPAIRERS[method].default_arbitrage
    iv = core.w_to_iv(out.w)
    assert np.isfinite(iv).all() and (iv > 0).all()
    assert (np.diff(iv**2 * core.T_GRID[:, None], axis=-2) >= -1e-12).all()   # round-trip rounding only
    if out.sd is not None:
        narrow, wide = out.half_width(out.sd, 0.8), out.half_width(out.sd, 0.95)
        assert (wide >= narrow).all() and (narrow >= 0).all()


def test_core_repair_defaults_to_the_recommended_method():
    assert core.repair(np.full((13, 17), 0.2)).method == DEFAULT_METHOD == core.DEFAULT_METHOD == "best"
