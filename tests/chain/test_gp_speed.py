"""The svi_gp speed paths give the numbers of the direct computations they replace (small and fast)."""
import numpy as np

from core.chain.gp_residual import (AMPS_IV, LENGTHS_U, NOISE_DEFAULTS_IV, STEPS_IV, _exact_ll, _factor, _kernel,
                                    _kernel_mean, _side, _unit, _units, choose_hyper, choose_hyper_and_factors)


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
        assert choose_hyper(slices, spread) == best


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
