"""Issue 13 items 2 and 8 (array parts): bad options and misread arrays end in one-line ValueErrors
naming the problem; a masked array's mask is honoured."""
import numpy as np
import pytest

import core


def sparse_grid(value=0.2):
    iv = np.full((13, 17), np.nan)
    iv[::3, ::4] = value
    return iv


BAD_OPTIONS = [   # (arguments to core.repair besides iv_obs, words the message must contain)
    ({"method": ["best"]}, "unknown method"),
    ({"method": None}, "unknown method"),
    ({"method": "interp", "noise_bp": 40}, "noise_bp"),
    ({"method": "svi", "noise_bp": 40}, "noise_bp"),
    ({"method": "cnn", "noise_bp": 40}, "noise_bp"),
    ({"method": "interp", "bogus": 1}, "bogus"),
    ({"method": "best", "bogus": 1}, "bogus"),
    ({"method": "svi", "grid": None}, "grid"),
    ({"method": "interp_svi", "grid": "coarse"}, "grid"),
    ({"method": "best", "noise_bp": "18"}, "noise_bp"),
    ({"method": "best", "noise_bp": [18]}, "noise_bp"),
    ({"method": "best", "noise_bp": -1.0}, "noise_bp"),
    ({"method": "best", "noise_bp": 0.0}, "noise_bp"),
    ({"method": "best", "noise_bp": float("nan")}, "noise_bp"),
    ({"method": "best", "noise_bp": float("inf")}, "noise_bp"),
    ({"method": "best", "noise_bp": True}, "noise_bp"),
    ({"method": "best", "weights": None}, "weights"),
    ({"method": "cnn", "weights": 3}, "weights"),
    ({"method": "interp", "arbitrage": ["full"]}, "arbitrage"),
    ({"method": "interp", "arbitrage": "butterfly"}, "arbitrage"),
]


@pytest.mark.parametrize("kwargs,word", BAD_OPTIONS, ids=[repr(k) for k, _ in BAD_OPTIONS])
def test_bad_option_is_a_one_line_value_error_naming_it(kwargs, word):
    with pytest.raises(ValueError) as info:
        core.repair(sparse_grid(), **kwargs)
    message = str(info.value)
    assert word in message and "\n" not in message, message


def test_numpy_scalar_noise_bp_is_accepted():
    out = core.repair(sparse_grid(), "best", noise_bp=np.float32(18))
    assert np.isfinite(out.iv).all()


def test_masked_array_mask_is_honoured():
    iv = sparse_grid()
    under = np.where(np.isnan(iv), 3.0, iv)           # a wild value under every masked cell
    masked = np.ma.masked_array(under, mask=np.isnan(iv))
    out = core.repair(masked, "interp")
    ref = core.repair(iv, "interp")
    assert out.observed.sum() == np.isfinite(iv).sum()
    np.testing.assert_array_equal(out.iv, ref.iv)
    # a quote masked out is missing even where its value is a valid vol
    masked2 = np.ma.masked_array(np.where(np.isnan(iv), 0.5, iv), mask=np.isnan(iv))
    np.testing.assert_array_equal(core.repair(masked2, "interp").iv, ref.iv)


@pytest.mark.parametrize("make", [lambda iv: iv.astype(complex), lambda iv: (iv + 0.01j).tolist(),
                                  lambda iv: np.isfinite(iv), lambda iv: iv.astype(str)],
                         ids=["complex array", "complex list", "boolean", "text"])
def test_complex_boolean_text_arrays_refused(make):
    with pytest.raises(ValueError, match="real numeric array"):
        core.repair(make(sparse_grid()), "interp")


@pytest.mark.parametrize("vol", [1e-300, 1e-6, 0.005])
def test_vols_below_the_floor_are_refused_not_floored(vol):
    iv = sparse_grid()
    iv[0, 0] = vol
    with pytest.raises(ValueError, match="below the floor"):
        core.repair(iv, "interp")


def test_vol_just_above_the_floor_is_kept():
    iv = sparse_grid()
    iv[-1, 0] = 0.01          # w = 2e-4 at T = 2: above the floor, repaired as quoted
    out = core.repair(iv, "interp", arbitrage="none")
    assert out.iv[-1, 0] == pytest.approx(0.01, rel=1e-9)
