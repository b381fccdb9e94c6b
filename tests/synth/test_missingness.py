import numpy as np
import pytest

from core.engine.grid import T_MESH
from core.synth.families import generate
from core.synth.missingness import (
    MIN_MASK_QUOTES,
    add_quote_noise,
    inject_stale,
    make_masks,
    noise_sd_iv,
    observe,
)


@pytest.mark.parametrize("regime, density", [("regular", 0.505), ("adversarial", 0.180)])
def test_mask_density(regime, density):
    m = make_masks(regime, 2000, seed=9)
    assert m.dtype == bool and m.shape == (2000, 13, 17)
    assert abs(m.mean() - density) < 0.015
    assert m.sum(axis=(1, 2)).min() >= MIN_MASK_QUOTES


def test_adversarial_structure():
    m = make_masks("adversarial", 2000, seed=1)
    atm = m[:, :, 8].mean()
    wings = np.minimum(m[:, :, :4].mean(axis=(1, 2)), m[:, :, -4:].mean(axis=(1, 2)))
    assert atm > 0.5                                  # the ATM spine
    assert (wings < 0.08).mean() > 0.95               # one wing nearly empty (anchors aside)
    front_thin = m[:, :2, :].sum(axis=(1, 2)) <= 2    # front erased (p = 0.65), then spine and anchors
    assert 0.35 < front_thin.mean() < 0.55


def test_regular_atm_band_is_dense():
    m = make_masks("regular", 2000, seed=2)
    assert m[:, :, 7:10].mean() > 0.8


def test_masks_seeded_and_unknown_regime():
    np.testing.assert_array_equal(make_masks("regular", 10, 3), make_masks("regular", 10, 3))
    with pytest.raises(ValueError, match="unknown missingness regime 'sparse'"):
        make_masks("sparse", 3, 0)


def test_noise_scale_is_18bp_with_inflation():
    w = generate("ssvi", 4000, seed=0)
    iv = np.sqrt(w / T_MESH)
    z = (add_quote_noise(w, seed=1) - iv) / noise_sd_iv()
    assert abs(z.std() - 1.0) < 0.01 and abs(z.mean()) < 0.01
    sd = noise_sd_iv()
    assert sd[-1, 8] == pytest.approx(18e-4)                 # long-dated ATM: base level
    assert sd[0, 0] == pytest.approx(18e-4 * 2.5 * 1.6)      # front wing: both inflations


def test_observe_marks_missing_with_nan():
    w = generate("ssvi", 20, seed=0)
    m = make_masks("regular", 20, seed=0)
    iv = observe(w, m, seed=0)
    np.testing.assert_array_equal(np.isfinite(iv), m)


def test_stale_injection():
    w = generate("sabr_event", 300, seed=0)
    m = make_masks("regular", 300, seed=0)
    iv = observe(w, m, seed=0)
    stale, label = inject_stale(iv, seed=1)
    assert (label <= m).all()
    per_surface = label.sum(axis=(1, 2)) / m.sum(axis=(1, 2))
    assert per_surface.min() > 0 and abs(per_surface.mean() - 0.075) < 0.01
    shift = np.abs(stale - iv)[label]
    assert shift.min() >= 0.0050 - 1e-12 and shift.max() <= 0.0110 + 1e-12
    np.testing.assert_array_equal(stale[m & ~label], iv[m & ~label])
