"""The extrapolation rule shared by every output (core.engine.domain)."""
import numpy as np

from core.engine.domain import T_EPS, outside_quoted, quoted_bounds


def test_bounds_and_the_rule():
    T = np.array([0.1, 0.1, 0.1, 0.5, 0.5, np.nan])
    k = np.array([-0.2, 0.0, 0.1, -0.4, 0.3, 0.0])
    E, lo, hi = quoted_bounds(T, k)
    assert list(E) == [0.1, 0.5] and list(lo) == [-0.2, -0.4] and list(hi) == [0.1, 0.3]
    T_ask = np.array([0.05, 0.6, 0.1, 0.1, 0.3, 0.3, 0.3, 0.1 + T_EPS / 2])
    k_ask = np.array([0.0, 0.0, 0.1, 0.11, -0.3, -0.31, 0.2, 0.1])
    # before, after, on the edge, just beyond it, inside the interpolated range, below it, at its top, T round-off
    assert list(outside_quoted(E, lo, hi, T_ask, k_ask)) == [True, True, False, True, False, True, False, False]
    assert outside_quoted(*quoted_bounds([], []), [0.1], [0.0]).all()
