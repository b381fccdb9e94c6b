"""Single-surface exploration for the dashboard (results reading lives in ui.presenters.report).

What the explorer and the Benchmark page compute, so the pages only draw:

- one surface: sampled from a generator (SSVI families also from explicit parameters) or drawn,
  a mask from a regime or a preset, noisy quotes;
- ``score_surface``: every chosen method's repair of that surface at the chosen projection (each
  method's default unless told), with its scores (missing-point RMSE, calendar and g(k) < 0 rates
  before and after the projection, the g(k) field), its interval band at BAND_LEVEL from the
  repairer's own ``half_width`` (conformal for "best", Gaussian z * sd otherwise) and that band's
  coverage, per-quote stale scores of methods that have them, slices with the bands, and who won;
- optional stale quotes injected as in the benchmark's stale test (``stale_quotes``);
- whether a method's weights load (``weights_status``; the paths honour $REPAIR_CNN_WEIGHTS and
  $REPAIR_BEST_WEIGHTS, which is how the tests point the app at a missing file);
- ``run_benchmark``: the 2 x 2 with a progress callback, leaving out a method that cannot run.

Units: implied vol ``iv`` in vol units (0.20 = 20 %), maturity ``T`` in years, log-moneyness ``k``.
Arrays are (13, 17) on (core.T_GRID, core.K_GRID) unless stated.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core import pipeline
from core.engine.arbitrage import MODES as ARBITRAGE_MODES
from core.engine.arbitrage import butterfly_violations, calendar_violation_rate, g_field
from core.engine.grid import K_GRID, N_K, N_T, T_GRID, iv_to_w, w_to_iv
from core.evaluation.benchmark import run
from core.seeds import STALE_SEED_OFFSET
from core.pipeline import MIN_QUOTES
from core.quotes.stale import threshold_for
from core.repairers.registry import METHODS, get_repairer, repairer_class
from core.repairers.weights import WeightsError, load_manifest
from core.synth.families import (
    GENERATORS,
    SHIFTED_BUMP,
    SHIFTED_SSVI_RANGES,
    SSVI_RANGES,
    ssvi_theta_phi,
    ssvi_w,
)
from core.synth.missingness import (
    IV_CLIP,
    NOISE_BP,
    STALE_FRACTION,
    inject_stale,
    make_masks,
    observe,
)
from ui.presenters.report import FAMILY_LABELS, cnn_weights_path, weights_path  # noqa: F401 (pages read it here)
from ui.scales import robust_range

REGIMES = ("adversarial", "regular", "none")
SSVI_FAMILIES = ("ssvi", "shifted_ssvi")
SSVI_PARAMS = ("theta0", "theta_slope", "theta_curve", "rho", "eta", "gamma")
# Slider bounds: the union of the training and shifted boxes, so any drawn surface is reachable.
SSVI_PARAM_BOUNDS = {p: (min(SSVI_RANGES[p][0], SHIFTED_SSVI_RANGES[p][0]),
                         max(SSVI_RANGES[p][1], SHIFTED_SSVI_RANGES[p][1])) for p in SSVI_PARAMS}
CNN_METHOD = "cnn"
G_K_GRID = K_GRID[1:-1]                      # k of the g(k) field (interior nodes)
BAND_LEVEL = 0.95                            # the level of every band and half-width the explorer draws
# The lowest noise a noise-modelling method is told (bp): the slider reaches 0, where a Gaussian
# likelihood with zero variance is singular.
NOISE_FLOOR_BP = 1.0
# A quote is flagged as stale when Best's stale score (a log likelihood ratio, stale vs noise)
# exceeds core's threshold for that score (calibrated on synthetic chains to 2 % false flags,
# results/stale_calibration.json): the same number the "Your quotes" page and the CLI use, so one
# score gets one threshold on every page.
STALE_FLAG_LLR, STALE_FLAG_CALIBRATED = threshold_for("best")

# The first view of the explorer: an adversarial SABR-event surface, as in the post's figure.
# Mask seed 10 erases the front, most of the long end and the right wing, leaving an ATM spine.
DEFAULT_VIEW = {"family": "sabr_event", "surface_seed": 3, "regime": "adversarial", "mask_seed": 10,
                "noise_bp": NOISE_BP}
# Best and its strongest rival (the VAE, the runner-up in the 2 x 2) first, so the headline verdict
# compares Best with the method that comes closest, not with interpolation; then the baselines.
DEFAULT_METHODS = ("best", "vae", "interp", "svi", "cnn")


# --------------------------------------------------------------------------- where things live

def method_config(method: str, weights: Path | None = None, noise_bp: float | None = None) -> dict:
    """Constructor configuration for ``method``: a method with weights gets the app's weights path
    (``weights`` overrides the CNN's); a method that models quote noise gets ``noise_bp`` (floored
    at NOISE_FLOOR_BP: a noise-free likelihood is singular)."""
    cls = repairer_class(method)
    config = {}
    if method == CNN_METHOD:
        config["weights"] = Path(weights) if weights else cnn_weights_path()
    elif cls.needs_weights and weights_path(method) is not None:
        config["weights"] = weights_path(method)
    if cls.models_noise and noise_bp is not None:
        config["noise_bp"] = max(float(noise_bp), NOISE_FLOOR_BP)
    return config


def weights_status(method: str, weights: Path | None = None) -> dict:
    """Whether ``method``'s weights load: {"available", "message", "path", "manifest" (dict or None)}."""
    path = Path(weights) if weights else weights_path(method)
    try:
        get_repairer(method, weights=path).load()
    except (WeightsError, ValueError) as exc:
        return {"available": False, "message": str(exc), "path": str(path), "manifest": None}
    try:
        manifest = load_manifest(path)
    except WeightsError:
        manifest = None
    return {"available": True, "message": f"{method} weights loaded from {path}", "path": str(path),
            "manifest": manifest}


def arbitrage_modes() -> tuple:
    """Projection modes ``core.repair`` accepts besides "none": ("calendar", "full")."""
    return tuple(m for m in ARBITRAGE_MODES if m != "none")


def projection_choices() -> tuple:
    """The explorer's projection choices: "default" (each method's own) and the modes core.repair accepts."""
    return ("default",) + arbitrage_modes()


def default_projection(method: str) -> str:
    """The projection core.repair applies to ``method`` unless told otherwise."""
    return repairer_class(method).default_arbitrage


def projection_label(choice: str, methods=METHODS, label=str) -> str:
    """Display text of a projection choice; "default" spells out each method's default
    (``label``: method name -> display name)."""
    if choice != "default":
        return {"calendar": "calendar", "full": "full (butterfly + calendar)"}.get(choice, choice)
    by_mode: dict = {}
    for m in methods:
        by_mode.setdefault(default_projection(m), []).append(m)
    if len(by_mode) <= 1:
        return f"method default ({next(iter(by_mode), 'calendar')})"
    common = max(by_mode, key=lambda mode: len(by_mode[mode]))
    rest = "; ".join(f"{mode} for {', '.join(map(label, ms))}" for mode, ms in by_mode.items() if mode != common)
    return f"method default ({common}; {rest})"


def band_label(method: str, level: float = BAND_LEVEL, weights: Path | None = None) -> str:
    """What ``method``'s interval at ``level`` is: "conformal 95 % band" for a calibrated method,
    "±1.96 sd (Gaussian 95 %) band" for a Gaussian one."""
    repairer = get_repairer(method, **method_config(method, weights))
    pct = f"{100 * level:g} %"
    z = float(np.ravel(repairer.half_width(np.ones(1), level))[0])
    if abs(z - norm_ppf(0.5 + level / 2.0)) < 1e-9:
        return f"±{z:.2f} sd (Gaussian {pct}) band"
    return f"{repairer.interval_kind} {pct} band"


def interval_multiplier(method: str, level: float, weights: Path | None = None) -> float:
    """q with half-width = q x sd at ``level`` for ``method`` (its own half_width; conformal for "best")."""
    repairer = get_repairer(method, **method_config(method, weights))
    return float(np.ravel(repairer.half_width(np.ones(1), level))[0])


def norm_ppf(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


# --------------------------------------------------------------------------- one surface

def ssvi_parameters(family: str, seed: int) -> dict:
    """The six SSVI parameters the generator draws for surface ``seed`` of an SSVI family."""
    if family not in SSVI_FAMILIES:
        raise ValueError(f"{family!r} is not an SSVI family; choose one of {', '.join(SSVI_FAMILIES)}")
    _, params = GENERATORS[family](1, seed, return_params=True)
    return {p: float(params[p][0]) for p in SSVI_PARAMS}


def _ssvi_from_params(params: dict) -> np.ndarray:
    """Total variance (13, 17) of SSVI with the generators' theta(T) and phi(theta) construction."""
    theta, phi = ssvi_theta_phi(params["theta0"], params["theta_slope"], params["theta_curve"], params["eta"],
                                params["gamma"])
    return ssvi_w(theta, np.asarray(params["rho"]), phi)


def sample_surface(family: str, seed: int, ssvi_params: dict | None = None) -> np.ndarray:
    """True implied vol (13, 17) of surface ``seed`` of ``family``.

    For an SSVI family, ``ssvi_params`` (any of the six) replace the drawn parameters; a shifted-SSVI
    surface keeps the seed's maturity bump. With the drawn parameters this equals the generator.
    """
    if family not in GENERATORS:
        raise ValueError(f"unknown surface family {family!r}; choose one of {', '.join(GENERATORS)}")
    w, drawn = GENERATORS[family](1, int(seed), return_params=True)
    if ssvi_params and family in SSVI_FAMILIES:
        unknown = set(ssvi_params) - set(SSVI_PARAMS)
        if unknown:
            raise ValueError(f"unknown SSVI parameter(s) {', '.join(sorted(unknown))}")
        params = {p: float(drawn[p][0]) for p in SSVI_PARAMS} | {p: float(v) for p, v in ssvi_params.items()}
        w = _ssvi_from_params(params)
        if family == "shifted_ssvi" and drawn["has_bump"][0]:
            distance = (np.arange(N_T) - drawn["bump_T_index"][0]) / SHIFTED_BUMP["width_nodes"]
            bump = drawn["bump_amplitude"][0] * np.exp(-0.5 * distance**2)
            w = w + bump[:, None] * (1.0 + 0.4 * np.tanh(4.0 * K_GRID))[None, :]
        w = np.maximum(w, 1e-4)
    return w_to_iv(np.asarray(w).reshape(N_T, N_K))


def check_truth(iv) -> np.ndarray:
    """A drawn true-vol grid as float (13, 17); ValueError naming the first bad cell.

    Every cell must be a number in (0, 2] (quotes are clipped at 2.0, so a larger truth could not
    be observed faithfully).
    """
    if np.shape(iv) != (N_T, N_K):
        raise ValueError(f"a drawn surface must be a {N_T} x {N_K} grid; got shape {np.shape(iv)}")
    try:
        grid = np.asarray(iv, dtype=np.float64)
    except (TypeError, ValueError):
        for (t, k), value in np.ndenumerate(np.asarray(iv, dtype=object)):
            try:
                float(value)
            except (TypeError, ValueError):
                raise ValueError(f"drawn vol {value!r} at T={T_GRID[t]:.2f}, k={K_GRID[k]:+.3f} "
                                 "is not a number") from None
        raise
    checks = [(~np.isfinite(grid), "is empty or not a number"),
              (grid <= 0, "is <= 0; implied vols must be positive"),
              (grid > IV_CLIP[1], f"is above {IV_CLIP[1]:g}; enter vols as decimals (0.25 = 25 %)")]
    for bad, what in checks:
        if bad.any():
            t, k = np.argwhere(bad)[0]
            value = f"vol {grid[t, k]:g}" if np.isfinite(grid[t, k]) else "cell"
            raise ValueError(f"the drawn {value} at T={T_GRID[t]:.2f}, k={K_GRID[k]:+.3f} {what} "
                             f"({int(bad.sum())} such cell(s))")
    return grid


def sample_mask(regime: str, seed: int) -> np.ndarray:
    """Boolean observed mask (13, 17) of ``regime`` ("regular", "adversarial" or "none")."""
    if regime not in REGIMES:
        raise ValueError(f"unknown missingness regime {regime!r}; choose one of {', '.join(REGIMES)}")
    return make_masks(regime, 1, int(seed))[0]


WING_K = 0.2          # |k| beyond which a wing preset erases quotes
FRONT_T = 0.4         # maturities up to this (years) are "front"
LONG_T = 1.6          # maturities from this (years) are "long"


def _drop_broker_stripe(mask: np.ndarray) -> np.ndarray:
    # The broker's stripe that goes dark is the best-quoted maturity (ties: nearest the middle).
    counts = mask.sum(1) - 1e-3 * np.abs(np.arange(N_T) - N_T // 2)
    out = mask.copy()
    out[int(np.argmax(counts))] = False
    return out


MASK_PRESETS = {
    "Drop left wing": lambda m: m & (K_GRID >= -WING_K)[None, :],
    "Drop right wing": lambda m: m & (K_GRID <= WING_K)[None, :],
    "Drop front maturities": lambda m: m & (T_GRID > FRONT_T)[:, None],
    "Drop long maturities": lambda m: m & (T_GRID < LONG_T)[:, None],
    "Drop a broker stripe": _drop_broker_stripe,
    "Quote every cell": lambda m: np.ones_like(m),
    "Clear every cell": lambda m: np.zeros_like(m),
}
PRESET_HELP = {
    "Drop left wing": f"erase every quote with k < -{WING_K}",
    "Drop right wing": f"erase every quote with k > {WING_K}",
    "Drop front maturities": f"erase every quote with T <= {FRONT_T} y",
    "Drop long maturities": f"erase every quote with T >= {LONG_T} y",
    "Drop a broker stripe": "erase the best-quoted maturity across every strike",
    "Quote every cell": "observe the whole grid",
    "Clear every cell": "erase every quote",
}


def apply_preset(mask: np.ndarray, name: str) -> np.ndarray:
    """``mask`` (13, 17) bool after the named preset (see MASK_PRESETS / PRESET_HELP)."""
    try:
        preset = MASK_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown mask preset {name!r}; choose one of {', '.join(MASK_PRESETS)}") from None
    return np.asarray(preset(np.asarray(mask, dtype=bool)), dtype=bool)


def check_mask(mask) -> np.ndarray:
    """A drawn observed mask as bool (13, 17); ValueError when it leaves too few quotes to repair."""
    mask = np.asarray(mask)
    if mask.shape != (N_T, N_K):
        raise ValueError(f"a mask must be a {N_T} x {N_K} grid; got shape {mask.shape}")
    mask = mask.astype(bool)
    n = int(mask.sum())
    if n == 0:
        raise ValueError("the mask hides every cell: there is nothing to repair from; quote at least "
                         f"{MIN_QUOTES} cells")
    if n < MIN_QUOTES:
        raise ValueError(f"the mask leaves {n} quote(s); a repair needs at least {MIN_QUOTES}")
    return mask


def quotes(iv_true: np.ndarray, observed: np.ndarray, noise_bp: float = NOISE_BP, seed: int = 0) -> np.ndarray:
    """Noisy quoted vols (13, 17), NaN where not observed: the benchmark's noise model at ``noise_bp``."""
    if not np.isfinite(noise_bp) or noise_bp < 0:
        raise ValueError(f"noise must be a non-negative number of bp; got {noise_bp}")
    return observe(iv_to_w(iv_true)[None], np.asarray(observed, bool)[None], int(seed), float(noise_bp))[0]


def stale_quotes(iv_obs: np.ndarray, seed: int, fraction: float = STALE_FRACTION) -> tuple:
    """(quotes, is_stale): ``fraction`` of the quotes (at least one) moved by ±50–110 bp, as in the
    benchmark's stale-quote test; is_stale is the boolean (13, 17) label."""
    iv_stale, is_stale = inject_stale(np.asarray(iv_obs, float)[None], int(seed) + STALE_SEED_OFFSET, fraction)
    return iv_stale[0], is_stale[0]


# --------------------------------------------------------------------------- scores of one surface

@dataclass
class MethodView:
    """One method's repair of one surface, with its scores. Vols and errors in vol units."""

    method: str
    iv: np.ndarray                 # (13, 17) after the projection
    iv_raw: np.ndarray             # (13, 17) before it
    sd: np.ndarray | None          # (13, 17) predictive sd, or None
    abs_err: np.ndarray            # (13, 17) |iv - truth|
    rmse_missing: float            # over the cells the mask hides (NaN when none is hidden)
    rmse_all: float                # over every cell
    raw_calendar: float            # share of (T, T+1) edges where w falls, before the projection
    post_calendar: float           # the same after it
    g_negative: float              # share of interior nodes with g(k) < 0 after the projection
    g: np.ndarray                  # (13, 15) g(k) on interior k (K_GRID[1:-1])
    g_violation: np.ndarray        # (13, 15) bool, g < 0
    projection: str = "calendar"   # the projection applied ("calendar" or "full")
    g_negative_raw: float = float("nan")   # g(k) < 0 share before the projection
    half_width: np.ndarray | None = None   # (13, 17) half-width of the BAND_LEVEL interval, or None
    band: str | None = None        # what that interval is ("conformal 95 % band", "±1.96 sd ...")
    band_coverage: float = float("nan")    # share of missing cells whose truth lies in the band
    stale: np.ndarray | None = None        # (13, 17) stale score per quote (NaN where not quoted), or None

    @property
    def outside_band(self) -> np.ndarray | None:
        """(13, 17) bool: cells whose truth lies outside the band (None without a band)."""
        return None if self.half_width is None else self.abs_err > self.half_width

    @property
    def stale_flagged(self) -> np.ndarray | None:
        """(13, 17) bool: quotes whose stale score exceeds STALE_FLAG_LLR (None without scores)."""
        return None if self.stale is None else np.nan_to_num(self.stale, nan=-np.inf) > STALE_FLAG_LLR


@dataclass
class SurfaceView:
    """A surface, its quotes and every method's repair. ``errors``: method -> why it could not run."""

    iv_true: np.ndarray
    iv_obs: np.ndarray
    observed: np.ndarray
    arbitrage: str | None          # the projection asked for; None = each method's default
    methods: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    truth_g_negative: float = float("nan")
    truth_calendar: float = float("nan")
    stale_truth: np.ndarray | None = None   # (13, 17) bool: quotes made stale on purpose, or None
    band_level: float = BAND_LEVEL

    g_k = G_K_GRID                 # k of the g(k) field

    @property
    def n_quoted(self) -> int:
        return int(self.observed.sum())

    @property
    def quoted_fraction(self) -> float:
        return float(self.observed.mean())

    @property
    def quote_abs_err(self) -> np.ndarray:
        """|quote - truth| (13, 17): the quote noise, NaN where not quoted."""
        return np.abs(self.iv_obs - self.iv_true)

    def vol_range(self) -> tuple:
        """(low, high): the shared vol colour range, the median +/- 4 robust sd of the truth and the
        quotes (ui.scales.robust_range), within their min and max. Not min/max: a steep front row
        (T = 0.08) would otherwise take the whole scale and draw the rest of the truth in one
        colour; values outside saturate."""
        return robust_range(self.iv_true, self.iv_obs[self.observed])

    def error_range(self, methods=None) -> tuple:
        """(0, high): the shared scale of |error|, quote noise and band half-widths, up to the median
        + 4 robust sd of all of them pooled (ui.scales.robust_range), so one method's bad corner
        (the CNN's front row) does not wash out everyone else's errors; larger values saturate."""
        shown = [self.methods[m] for m in (methods or self.methods) if m in self.methods]
        arrays = [self.quote_abs_err] + [v.abs_err for v in shown] + [v.half_width for v in shown
                                                                       if v.half_width is not None]
        return robust_range(*arrays, floor=0.0)

    def desk(self, method: str) -> dict:
        """The desk's views of ``method``'s repair (core.quotes.desk; nothing is extrapolated on a
        full synthetic grid): "fan", "atm" (with its band), "density" and "svi" (raw SVI per maturity
        fitted to the repaired slice, as the quotes page's svi_params.csv) as tables."""
        from core.quotes import desk
        from core.quotes.workflow import svi_params_table

        v = self.methods[method]
        return {"fan": desk.fan_table(v.iv), "atm": desk.atm_table(v.iv, v.half_width),
                "density": desk.density_table(v.iv), "svi": svi_params_table(iv_to_w(v.iv), method)}

    def surfaces_table(self):
        """One row per grid node: T (years), k, iv_true, iv_quote (NaN where not quoted), quoted, and
        per method iv_<m>, sd_<m>, half_width_<m> (its band, NaN without one): the download."""
        import pandas as pd

        TT, KK = np.meshgrid(T_GRID, K_GRID, indexing="ij")
        table = {"T": TT.ravel(), "k": KK.ravel(), "iv_true": self.iv_true.ravel(), "iv_quote": self.iv_obs.ravel(),
                 "quoted": self.observed.ravel()}
        for m, v in self.methods.items():
            table[f"iv_{m}"] = v.iv.ravel()
            table[f"sd_{m}"] = v.sd.ravel() if v.sd is not None else np.nan
            table[f"half_width_{m}"] = v.half_width.ravel() if v.half_width is not None else np.nan
        return pd.DataFrame(table)

    def scores_table(self):
        """One row per method: its scores on this surface (rates as fractions, RMSE in vol units)."""
        import pandas as pd

        return pd.DataFrame([{"method": m, "projection": v.projection, "rmse_missing": v.rmse_missing,
                              "rmse_all": v.rmse_all, "g_negative_raw": v.g_negative_raw, "g_negative": v.g_negative,
                              "calendar_raw": v.raw_calendar, "calendar_projected": v.post_calendar,
                              "band": v.band, "band_coverage": v.band_coverage} for m, v in self.methods.items()])

    def default_smile_index(self) -> int:
        """The maturity row with the most quotes (the middle-most among ties): the first smile shown
        then has quote markers to judge the repairs against."""
        counts = self.observed.sum(axis=1)
        mid = (N_T - 1) / 2
        return int(max(range(N_T), key=lambda i: (counts[i], -abs(i - mid))))

    def default_term_index(self) -> int:
        """The k column with the most quotes (the middle-most among ties), for the first term structure."""
        counts = self.observed.sum(axis=0)
        mid = (N_K - 1) / 2
        return int(max(range(N_K), key=lambda j: (counts[j], -abs(j - mid))))

    def quote_points(self) -> tuple:
        """(k, T) of every quoted cell, for markers."""
        t, k = np.nonzero(self.observed)
        return K_GRID[k], T_GRID[t]

    def g_violation_points(self, method: str) -> tuple:
        """(k, T) of the interior nodes where ``method``'s repair has g(k) < 0."""
        t, k = np.nonzero(self.methods[method].g_violation)
        return G_K_GRID[k], T_GRID[t]

    @property
    def score_name(self) -> str:
        """The ranking score: missing-point RMSE, or all-cell RMSE when nothing is missing."""
        return "rmse_missing" if (~self.observed).any() else "rmse_all"

    def ranking(self) -> list:
        """[(method, score)] best first, by ``score_name``."""
        scores = [(m, getattr(v, self.score_name)) for m, v in self.methods.items()]
        return sorted((s for s in scores if np.isfinite(s[1])), key=lambda s: s[1])

    def verdict(self) -> dict | None:
        """Who won and by how much: winner, runner_up, their scores, the gap and the ratio."""
        ranked = self.ranking()
        if not ranked:
            return None
        out = {"winner": ranked[0][0], "score": ranked[0][1], "score_name": self.score_name}
        if len(ranked) > 1:
            runner, second = ranked[1]
            out.update(runner_up=runner, runner_up_score=second, gap=second - ranked[0][1],
                       ratio=second / ranked[0][1] if ranked[0][1] > 0 else float("inf"),
                       reduction=(second - ranked[0][1]) / second if second > 0 else 0.0)
        return out

    def stale_summary(self, method: str) -> dict | None:
        """How ``method``'s stale flags fare: {"flagged", "quotes", "injected", "caught", "false"}
        (None when it has no stale score); "injected"/"caught" are None when no quote was made stale."""
        v = self.methods[method]
        if v.stale is None:
            return None
        flagged = v.stale_flagged & self.observed
        out = {"flagged": int(flagged.sum()), "quotes": self.n_quoted, "injected": None, "caught": None,
               "false": None}
        if self.stale_truth is not None:
            out.update(injected=int(self.stale_truth.sum()), caught=int((flagged & self.stale_truth).sum()),
                       false=int((flagged & ~self.stale_truth).sum()))
        return out

    def stale_points(self, method: str, which: str = "flagged") -> tuple:
        """(k, T) of ``method``'s flagged quotes ("flagged") or of the injected stale quotes ("injected")."""
        cells = self.methods[method].stale_flagged if which == "flagged" else self.stale_truth
        if cells is None:
            return np.array([]), np.array([])
        t, k = np.nonzero(cells & self.observed)
        return K_GRID[k], T_GRID[t]

    def outside_band_points(self, method: str) -> tuple:
        """(k, T) of the missing cells whose truth lies outside ``method``'s band."""
        outside = self.methods[method].outside_band
        if outside is None:
            return np.array([]), np.array([])
        t, k = np.nonzero(outside & ~self.observed)
        return K_GRID[k], T_GRID[t]

    def smile(self, t_index: int) -> dict:
        """The smile at maturity T_GRID[t_index]: k, truth, quotes and each method with its band."""
        return self._cut(np.s_[int(t_index), :], K_GRID)

    def term_structure(self, k_index: int) -> dict:
        """Vol against T at log-moneyness K_GRID[k_index], as ``smile``."""
        return self._cut(np.s_[:, int(k_index)], T_GRID)

    def _cut(self, where, x: np.ndarray) -> dict:
        observed = self.observed[where]
        out = {"x": x, "truth": self.iv_true[where], "quote_x": x[observed],
               "quote_iv": self.iv_obs[where][observed], "methods": {}}
        for m, v in self.methods.items():
            line = {"iv": v.iv[where]}
            if v.half_width is not None:
                line.update(lower=v.iv[where] - v.half_width[where], upper=v.iv[where] + v.half_width[where],
                            band=v.band)
            out["methods"][m] = line
        return out


def _rmse(err: np.ndarray, cells: np.ndarray) -> float:
    return float(np.sqrt(np.mean(err[cells] ** 2))) if cells.any() else float("nan")


def score_surface(iv_true, iv_obs, methods=METHODS, arbitrage: str | None = None,
                  weights: Path | None = None, stale_truth: np.ndarray | None = None,
                  band_level: float = BAND_LEVEL, noise_bp: float | None = None) -> SurfaceView:
    """Repair one quoted surface with each of ``methods`` and score it against the truth.

    iv_true: (13, 17) true vols; iv_obs: (13, 17) quotes, NaN where missing. ``arbitrage``: the
    projection for every method ("calendar", "full"), or None / "default" for each method's default.
    ``stale_truth``: (13, 17) bool of quotes made stale on purpose (for display), or None. Bands are
    the central ``band_level`` intervals of each method's own ``half_width``. A bad input raises
    ValueError (as core.repair); a method that cannot run (weights missing, or any error inside the
    method) is reported in ``errors`` with its reason, and the others still run. ``noise_bp``: the
    quotes' noise level, given to every method that models noise (None: each method's default).
    """
    arbitrage = None if arbitrage in (None, "default") else arbitrage
    iv_true = check_truth(iv_true)
    iv_obs = np.asarray(iv_obs, dtype=np.float64)
    observed = np.isfinite(iv_obs)
    check_mask(observed)
    missing = ~observed
    w_true = iv_to_w(iv_true)
    w_obs, _ = pipeline.w_observed(pipeline.validate_iv_obs(iv_obs))
    view = SurfaceView(iv_true=iv_true, iv_obs=iv_obs, observed=observed, arbitrage=arbitrage,
                       truth_g_negative=float(np.mean(butterfly_violations(w_true))),
                       truth_calendar=calendar_violation_rate(w_true),
                       stale_truth=None if stale_truth is None else np.asarray(stale_truth, bool) & observed,
                       band_level=band_level)
    for m in methods:
        try:
            repairer = get_repairer(m, **method_config(m, weights, noise_bp))
            out = pipeline.run(repairer, w_obs, observed[None], arbitrage)
            iv_out, iv_raw = w_to_iv(out.w[0]), w_to_iv(out.w_raw[0])
            sd = None if out.sd is None else out.sd[0]
            half_width = None if sd is None else np.asarray(repairer.half_width(sd, band_level))
            stale = None if out.own_stale is None else np.where(observed, out.own_stale[0], np.nan)
            band = band_label(m, band_level, weights) if half_width is not None else None
        except (WeightsError, ValueError) as exc:
            view.errors[m] = str(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - one broken method must not take the page down
            view.errors[m] = f"{type(exc).__name__}: {exc}"
            continue
        w_out, w_raw = out.w[0], out.w_raw[0]
        err = np.abs(iv_out - iv_true)
        g = g_field(w_out)
        view.methods[m] = MethodView(
            method=m, iv=iv_out, iv_raw=iv_raw, sd=sd, abs_err=err,
            rmse_missing=_rmse(err, missing), rmse_all=_rmse(err, np.ones_like(missing)),
            raw_calendar=calendar_violation_rate(w_raw), post_calendar=calendar_violation_rate(w_out),
            g_negative=float(np.mean(butterfly_violations(w_out))), g=g, g_violation=butterfly_violations(w_out),
            projection=out.mode, g_negative_raw=float(np.mean(butterfly_violations(w_raw))),
            half_width=half_width, band=band,
            band_coverage=float(np.mean(err[missing] <= half_width[missing]))
            if half_width is not None and missing.any() else float("nan"),
            stale=stale)
    return view


# --------------------------------------------------------------------------- benchmark reports

def run_benchmark(n_test: int, methods=METHODS, weights: Path | None = None, progress=None) -> dict:
    """The 2 x 2 benchmark on ``n_test`` surfaces per cell, with ``progress(done, total, label)``
    after each cell. A method that cannot run (e.g. CNN weights missing) is left out and named
    under result["skipped"]; ValueError when no method can run or n_test < 2."""
    if int(n_test) < 2:
        raise ValueError("the benchmark needs at least 2 surfaces per cell (a standard error needs two)")
    runnable, skipped = [], {}
    for m in methods:
        try:
            get_repairer(m, **method_config(m, weights)).load()   # a bad weights file is caught here
        except (WeightsError, ValueError) as exc:
            skipped[m] = str(exc)
            continue
        runnable.append(m)
    if not runnable:
        raise ValueError("no method can run: " + "; ".join(f"{m}: {why}" for m, why in skipped.items()))
    result = run(int(n_test), tuple(runnable), weights=Path(weights) if weights else cnn_weights_path(),
                 progress=progress)
    result["skipped"] = skipped
    return result

