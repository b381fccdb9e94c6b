"""The dense arbitrage checker: catches planted violations, passes a surface known to be free."""
import numpy as np
import pytest

from core.chain.surface import FunctionSurface
from core.engine.dense_check import N_STRIKES, check_strikes, check_times, dense_check
from core.synth.families import SSVI_RANGES, ssvi_w

EXPIRIES = np.array([0.02, 0.1, 0.25, 0.5, 1.0, 2.0])
K_BOUNDS = (-1.0, 0.5)


def ssvi_surface_w(rho=-0.5, eta=1.0, gamma=0.4):
    """Power-law SSVI, theta(T) = 0.04 T: free of static arbitrage when eta (1 + |rho|) <= 2 and
    gamma in (0, 1/2] (Gatheral & Jacquier 2014, Remark 4.4 / Cor. 4.1)."""
    def w(T, k):
        theta = 0.04 * np.asarray(T, float)
        phi = eta / (theta**gamma * (1 + theta) ** (1 - gamma))
        x = phi * k + rho
        return 0.5 * theta * (1 + rho * phi * k + np.sqrt(x * x + 1 - rho * rho))
    return w


def test_ssvi_parameters_from_the_generator_box_meet_the_conditions_used():
    # the free surface below uses parameters inside the generator's SSVI box
    lo, hi = SSVI_RANGES["rho"]
    assert lo <= -0.5 <= hi
    assert 1.0 * (1 + 0.5) <= 2.0


def test_free_ssvi_surface_passes():
    report = dense_check(FunctionSurface(ssvi_surface_w(), EXPIRIES, K_BOUNDS))
    assert report.ok, report.to_dict()
    assert report.n_points >= 200 * (2 * EXPIRIES.size - 1)


def test_generator_ssvi_w_agrees_with_the_formula_used():
    theta, rho, phi = np.array([0.04]), np.array(-0.5), np.array([1.3])
    k = np.linspace(-0.4, 0.4, 9)
    x = phi[0] * k + rho
    expected = 0.5 * theta[0] * (1 + rho * phi[0] * k + np.sqrt(x * x + 1 - rho**2))
    np.testing.assert_allclose(ssvi_w(theta, rho, phi, k)[0], expected)


def test_planted_butterfly_is_caught():
    base = ssvi_surface_w()

    def w(T, k):           # a sharp bump in total variance: a negative density beside it
        return base(T, k) + 0.01 * np.asarray(T) * np.exp(-0.5 * ((k - 0.1) / 0.01) ** 2)
    report = dense_check(FunctionSurface(w, EXPIRIES, K_BOUNDS))
    assert report.n_butterfly > 0
    assert report.n_calendar == 0
    assert not report.ok
    assert abs(report.worst_butterfly["k"] - 0.1) < 0.1


def test_planted_calendar_is_caught():
    base = ssvi_surface_w()

    def w(T, k):           # total variance dips between the 0.25 and 1.0 expiries at every k
        T = np.asarray(T, float)
        return base(T, k) * (1 - 0.6 * np.exp(-0.5 * ((T - 0.5) / 0.1) ** 2))
    report = dense_check(FunctionSurface(w, EXPIRIES, K_BOUNDS))
    assert report.n_calendar > 0
    assert not report.ok
    assert 0.25 <= report.worst_calendar["T"] <= 1.0


def test_check_set_covers_expiries_midpoints_and_the_whole_domain():
    T = check_times(EXPIRIES)
    assert T.size == 2 * EXPIRIES.size - 1
    assert set(EXPIRIES).issubset(set(T))
    k = check_strikes(np.array([[-0.2, 0.1], [-1.0, 0.5]]))
    assert k.size == N_STRIKES >= 200
    assert k[0] == -1.0 and k[-1] == 0.5


def test_rejects_too_few_strikes():
    with pytest.raises(ValueError, match="n_strikes"):
        dense_check(FunctionSurface(ssvi_surface_w(), EXPIRIES, K_BOUNDS), n_strikes=2)


def test_check_read_off_the_dense_export_matches_pricing_the_surface_again(small_chain):
    """The workflow's dense check reuses the export's prices: same set (expiries, midpoints, >= 200
    strikes over the quoted domain) and the same counts as checking the surface directly; a planted
    calendar violation in the export is caught."""
    from core.chain.methods import get_chain_method
    from core.chain.workflow import GRID_STRIKES, dense_from_table

    surface = get_chain_method("svi_fit").fit(small_chain)
    grid = surface.table(n_k=GRID_STRIKES)
    via_table, direct = dense_from_table(surface, grid), dense_check(surface, GRID_STRIKES)
    assert GRID_STRIKES >= N_STRIKES and via_table.to_dict() == direct.to_dict() and via_table.ok
    assert np.array_equal(via_table.T, check_times(surface.expiries)) and via_table.k.size == GRID_STRIKES
    bad = grid.copy()
    bad.loc[bad["T"] == bad["T"].max(), "w"] *= 0.5           # the last time below the one before
    assert dense_from_table(surface, bad).n_calendar > 0
    # a table on another set is not trusted: the check prices the surface itself
    assert dense_from_table(surface, surface.table(n_k=50)).n_points == direct.n_points * N_STRIKES // GRID_STRIKES


def test_a_chain_quoted_at_one_strike_is_still_checked():
    """Every quote at k = 0: the check set is widened to MIN_CHECK_WIDTH with distinct strikes, so a
    butterfly bump there is caught (with a zero span the strikes coincided, the slopes were NaN and
    the check passed silently)."""
    from core.engine.domain import MIN_CHECK_WIDTH

    base = ssvi_surface_w()

    def w(T, k):
        return base(T, k) + 0.01 * np.asarray(T) * np.exp(-0.5 * (np.asarray(k) / 0.01) ** 2)
    k = check_strikes((0.0, 0.0))
    assert np.unique(k).size == N_STRIKES and k[-1] - k[0] >= MIN_CHECK_WIDTH - 1e-12
    report = dense_check(FunctionSurface(w, EXPIRIES, (0.0, 0.0)))
    assert report.n_butterfly > 0 and not report.ok
    assert dense_check(FunctionSurface(base, EXPIRIES, (0.0, 0.0))).ok
