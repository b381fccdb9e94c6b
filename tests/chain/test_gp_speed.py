"""The svi_gp speed paths give the numbers of the direct computations they replace (small and fast)."""
import numpy as np

from core.chain.gp_residual import (AMPS_IV, LENGTHS_U, NOISE_DEFAULTS_IV, STEPS_IV, _exact_ll, _factor, _kernel,
                                    _kernel_mean, _side, _unit, _units, choose_hyper_and_factors)


def test_kernel_mean_is_the_kernel_times_alpha_bit_for_bit():
    rng = np.random.default_rng(0)
    u2 = np.sort(rng.normal(size=37))
    alpha = rng.normal(size=37)
    # sizes either side of the row blocks (256, last block at least 8 rows) and one block
    for m in (1, 5, 263, 264, 265, 270, 512, 520, 2001):
        u1 = rng.uniform(-4.0, 4.0, m)
        d = (u1[:, None] - u2[None, :]) / 0.3
        direct = 1.5e-3 * 1.5e-3 * np.exp(-0.5 * d * d)
        assert np.array_equal(_kernel(u1, u2, 1.5e-3, 0.3), direct)
        assert np.array_equal(_kernel_mean(u1, u2, 1.5e-3, 0.3, alpha), direct @ alpha)


def _slices(rng, n_slices, spread):
    out = []
    for _ in range(n_slices):
        u = np.sort(rng.uniform(-2.5, 2.5, rng.integers(8, 30)))
        noise = rng.uniform(2e-4, 1e-3, u.size) if spread else np.ones(u.size)
        r = 2e-3 * np.sin(2 * u) + 5e-4 * np.where(u < 0, 1.0, -1.0) + 3e-4 * rng.normal(size=u.size)
        out.append((u, r, noise))
    return out


def test_choose_hyper_is_the_exhaustive_argmax():
    rng = np.random.default_rng(1)
    for spread in (True, False):
        slices = _slices(rng, 4, spread)
        noises = (1.0,) if spread else NOISE_DEFAULTS_IV
        sides = [np.outer(_side(u), _side(u)) for u, _, _ in slices]
        units = {length: _units(slices, length) for length in LENGTHS_U}
        best, best_ll = None, -np.inf
        for amp in AMPS_IV:
            for length in LENGTHS_U:
                for nz in noises:
                    for step in STEPS_IV:
                        ll = _exact_ll(slices, units[length], sides, amp, nz, step)
                        if ll > best_ll:
                            best, best_ll = (amp, length, nz, step), ll
        assert choose_hyper_and_factors(slices, spread)[0] == best


def test_unit_kernel_from_its_lower_triangle_is_the_kernel_bit_for_bit():
    rng = np.random.default_rng(2)
    # sizes either side of the row blocks (64)
    for n in (1, 2, 63, 64, 65, 130, 301):
        u = np.sort(rng.normal(size=n)) * 2.0
        for length in LENGTHS_U:
            assert np.array_equal(_unit(u, length), _kernel(u, u, 1.0, length))


def test_chosen_factors_are_fit_slice_gps_own():
    rng = np.random.default_rng(3)
    for spread in (True, False):
        slices = _slices(rng, 3, spread)
        (amp, length, nz, step), factors = choose_hyper_and_factors(slices, spread)
        assert len(factors) == len(slices)
        for (u, _, noise), c in zip(slices, factors):
            own = _factor(u, noise * nz, amp, length, step)
            assert c[1] == own[1] and np.array_equal(np.tril(c[0]), np.tril(own[0]))


def _gp(rng, n, length, spread_u=2.5):
    from core.chain.gp_residual import GPConfig, fit_slice_gp

    k = np.sort(rng.uniform(-spread_u, spread_u, n)) * 0.1
    r = 2e-3 * np.sin(20 * k) + 3e-4 * rng.normal(size=n)
    return fit_slice_gp(k, r, np.full(n, 3e-4), 0.1, 1.5e-3, length, GPConfig()), r


def _direct_mean(gp, k) -> tuple:
    """(u, taper, live, mean): the GP mean at k summed directly, kernel by kernel (the reference)."""
    u = gp._u(k)
    taper = gp._taper(u)
    live = taper > 1e-12
    direct = np.zeros(k.size)
    direct[live] = _kernel_mean(u[live], gp.u, gp.amp, gp.length, gp.alpha) * taper[live]
    return u, taper, live, direct


def test_gp_mean_from_its_chebyshev_interpolant_is_the_direct_sum_to_rounding():
    from core.chain.gp_residual import _ChebMean

    rng = np.random.default_rng(4)
    for length in LENGTHS_U:
        gp, r = _gp(rng, 60, length)
        k = np.linspace(-0.8, 0.8, 2001)
        u, taper, live, direct = _direct_mean(gp, k)
        got = gp.mean(k)
        assert gp.cheb and gp.cheb.coef.size <= 1025
        scale = np.abs(gp.alpha).sum() * gp.amp**2
        assert np.abs(got - direct).max() <= 1e-13 * scale
        # elementwise from one interpolant: the same numbers whichever points are asked together
        assert np.array_equal(gp.mean(k[::7]), got[::7])
        # a smoother refit gets its own interpolant, not the parent's
        smooth = gp.with_length(4.0, r)
        assert smooth.cheb is None
        d2 = _kernel_mean(u[live], smooth.u, smooth.amp, smooth.length, smooth.alpha) * taper[live]
        assert np.abs(smooth.mean(k)[live] - d2).max() <= 1e-13 * np.abs(smooth.alpha).sum() * smooth.amp**2
    # too rough for CHEB_MAX nodes over its range: summed directly, bit for bit
    gp, _ = _gp(rng, 80, 0.004, spread_u=40.0)
    k = np.linspace(-4.0, 4.0, 501)
    u, taper, live, direct = _direct_mean(gp, k)
    assert np.array_equal(gp.mean(k), direct)
    assert gp.cheb is False
    assert not _ChebMean(*gp._live_range(), gp.u, gp.amp, gp.length, gp.alpha).ok


def test_latent_sd_and_loo_match_cho_solve():
    from scipy.linalg import cho_solve

    rng = np.random.default_rng(5)
    gp, r = _gp(rng, 50, 0.3)
    k = np.linspace(-0.5, 0.5, 301)
    Ks = _kernel(gp.u, gp._u(k), gp.amp, gp.length)
    ref = np.sqrt(np.maximum(gp.amp**2 - np.einsum("ij,ij->j", Ks, cho_solve(gp.chol, Ks)), 0.0))
    assert np.allclose(gp.sd(k), ref, rtol=1e-9, atol=1e-12 * gp.amp)
    ref_loo = gp.alpha / np.diag(cho_solve(gp.chol, np.eye(gp.u.size)))
    assert np.allclose(gp.loo(r), ref_loo, rtol=1e-9, atol=0.0)


def test_a_large_expiry_is_thinned_for_the_choice_only():
    """An expiry of more than HYPER_MAX_QUOTES quotes: the hyper-parameters are chosen on an even
    thinning of it (the same choice as on the thinned slice), and the factors returned are its full
    covariance's at that choice (what fit_slice_gp would factorise)."""
    from core.chain import gp_residual as g

    rng = np.random.default_rng(3)
    n_big = g.HYPER_MAX_QUOTES + 200
    u_big = np.sort(rng.uniform(-3.0, 2.0, n_big))
    u_small = np.sort(rng.uniform(-2.0, 2.0, 40))
    slices = [(u, 0.003 * np.sin(1.3 * u) + 0.0005 * rng.standard_normal(u.size), np.full(u.size, 0.0005))
              for u in (u_big, u_small)]
    h, factors = g.choose_hyper_and_factors(slices, has_spread=True)
    h_thin, _ = g._choose_hyper([g._thinned(slices[0]), slices[1]], has_spread=True)
    assert h == h_thin
    amp, length, nz, step = h
    assert factors[0][0].shape == (n_big, n_big) and factors[1][0].shape == (40, 40)
    for (u, _, noise), c in zip(slices, factors):
        L = np.tril(c[0])
        ref = np.tril(_factor(u, noise * nz, amp, length, step)[0])
        np.testing.assert_allclose(L, ref, rtol=1e-9, atol=1e-12)
