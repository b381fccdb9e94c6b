"""Conformal calibration hits its nominal coverage on fresh data, even when the raw sd is off."""
import numpy as np
import pytest

from core.engine.conformal import ConformalCalibrator, conformal_quantile


def _heteroscedastic(n, seed, sd_scale):
    """Errors with a true sd that varies by cell; the 'predicted' sd is right in shape, wrong in scale."""
    rng = np.random.default_rng(seed)
    true_sd = rng.uniform(0.001, 0.02, size=n)
    err = np.abs(rng.standard_t(df=5, size=n) * true_sd)
    return err, true_sd * sd_scale


@pytest.mark.parametrize("sd_scale", [0.3, 1.0, 4.0])
def test_coverage_on_a_fresh_set(sd_scale):
    cal = ConformalCalibrator().fit(*_heteroscedastic(20000, 0, sd_scale))
    err, sd = _heteroscedastic(20000, 1, sd_scale)
    for level in (0.5, 0.8, 0.95, 0.99):
        covered = np.mean(err <= cal.half_width(sd, level))
        assert abs(covered - level) < 0.01, (level, covered)


def test_raw_gaussian_intervals_would_miss():
    err, sd = _heteroscedastic(20000, 2, 0.3)
    assert np.mean(err <= 1.2816 * sd) < 0.5     # the uncalibrated 80 % interval badly undercovers


def test_mondrian_groups_cover_within_each_group():
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 3, size=30000)
    sd = np.full(groups.size, 0.01)
    err = np.abs(rng.normal(size=groups.size)) * 0.01 * (1 + 2 * groups)   # sd wrong by group
    cal = ConformalCalibrator().fit(err[:15000], sd[:15000], groups[:15000])
    for g in range(3):
        sel = groups[15000:] == g
        covered = np.mean(err[15000:][sel] <= cal.half_width(sd[15000:][sel], 0.8, groups[15000:][sel]))
        assert abs(covered - 0.8) < 0.02
    pooled = ConformalCalibrator().fit(err[:15000], sd[:15000])
    worst = min(np.mean(err[15000:][groups[15000:] == g] <= pooled.half_width(0.01, 0.8)) for g in range(3))
    assert worst < 0.7                            # without groups one group undercovers


def test_quantile_rank_and_round_trip(tmp_path):
    assert conformal_quantile(np.arange(1, 10), 0.8) == 8.0      # ceil(10 * 0.8) = 8th smallest
    assert conformal_quantile(np.arange(1, 4), 0.99) == float("inf")
    cal = ConformalCalibrator().fit(*_heteroscedastic(500, 4, 1.0))
    cal.save(tmp_path / "c.json")
    again = ConformalCalibrator.load(tmp_path / "c.json")
    assert again.multiplier(0.95) == cal.multiplier(0.95)


def test_bad_calibration_input():
    with pytest.raises(ValueError, match="differ in size"):
        ConformalCalibrator().fit(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="positive finite sds"):
        ConformalCalibrator().fit(np.ones(3), np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="not calibrated"):
        ConformalCalibrator(levels=(0.8,)).fit(np.ones(3), np.ones(3)).multiplier(0.9)
