import numpy as np
import pytest

import core
from core.engine.grid import T_MESH, iv_to_w, w_to_iv


def test_grid_contract():
    assert core.T_GRID.shape == (13,) and core.K_GRID.shape == (17,)
    np.testing.assert_allclose(core.T_GRID, np.linspace(0.08, 2.0, 13))
    np.testing.assert_allclose(core.K_GRID, np.linspace(-0.45, 0.45, 17))
    assert set(("interp", "svi", "cnn")) <= set(core.METHODS)


@pytest.mark.parametrize("lead", [(), (3,), (2, 4)])
def test_conversions_round_trip_any_batch(lead):
    iv = np.random.default_rng(0).uniform(0.05, 1.5, size=lead + (13, 17))
    w = iv_to_w(iv)
    assert w.shape == iv.shape
    np.testing.assert_allclose(w, iv**2 * T_MESH)
    np.testing.assert_allclose(w_to_iv(w), iv, rtol=1e-12)
