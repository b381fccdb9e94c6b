"""The seed registry: every random stream the project draws, by purpose, in one place.

Test cells (the 2 x 2 and the Heston cells) are the reference's seeds. Training, validation and
calibration streams of every learned model, and the stale-flag calibration chains, use their own
ranges; the assertion at the bottom keeps the four purposes disjoint.
"""
from __future__ import annotations

from dataclasses import dataclass

STALE_SEED_OFFSET = 401      # stale-injection seed = noise seed + this (the reference's rule)
FRESH_NOISE_OFFSET = 77      # the stale test's fresh quote noise: stale seed + this


# how the pages and tables name each synthetic family
FAMILY_LABELS = {"ssvi": "Training SSVI", "shifted_ssvi": "Shifted SSVI", "sabr_event": "SABR-event",
                 "heston": "Heston", "essvi_broad": "Broad eSSVI", "merton_jump": "Merton jump", "lognormal_mixture": "Lognormal mixture"}


@dataclass(frozen=True)
class Cell:
    """One benchmark cell: a surface family under a mask regime, with its test seeds."""

    family: str
    mask: str
    surface_seed: int
    mask_seed: int
    noise_seed: int

    @property
    def stale_seed(self) -> int:
        return self.noise_seed + STALE_SEED_OFFSET

    @property
    def fresh_noise_seed(self) -> int:
        return self.stale_seed + FRESH_NOISE_OFFSET

    @property
    def label(self) -> str:
        return f"{FAMILY_LABELS.get(self.family, self.family)} / {self.mask}"


TEST_CELLS = (
    Cell("shifted_ssvi", "regular", 1001, 2001, 3000),
    Cell("shifted_ssvi", "adversarial", 1002, 2002, 3001),
    Cell("sabr_event", "regular", 1003, 2003, 3002),
    Cell("sabr_event", "adversarial", 1004, 2004, 3003),
)
HESTON_CELLS = (
    Cell("heston", "regular", 1005, 2005, 3004),
    Cell("heston", "adversarial", 1006, 2006, 3005),
)
# Families and masks "best" never trains on (core.synth.mixtures; the liquidity mask): the benchmark's
# outside section. Test seeds, their own numbers.
OUTSIDE_CELLS = (
    Cell("merton_jump", "adversarial", 1101, 2101, 3100),
    Cell("merton_jump", "liquidity", 1102, 2102, 3101),
    Cell("lognormal_mixture", "adversarial", 1103, 2103, 3102),
    Cell("lognormal_mixture", "liquidity", 1104, 2104, 3103),
    Cell("shifted_ssvi", "liquidity", 1105, 2105, 3104),
    Cell("sabr_event", "liquidity", 1106, 2106, 3105),
    Cell("heston", "liquidity", 1107, 2107, 3106),
)

# The post's CNN (core.training.cnn): fixed streams; noise seeds are CNN_SEED + 101 / + 202.
CNN_SEED = 17
CNN_TRAIN = {"surface": 100, "mask": 200, "noise": CNN_SEED + 101}
CNN_VALIDATION = {"surface": 300, "mask": 400, "noise": CNN_SEED + 202}

# "best" (core.repairers.best, core.training.best): prior draws BEST_TRAIN_SEED + family index,
# its broad components' BEST_BROAD_SEED + their index (the same for every prior, LOFO ones too);
# calibration and validation cell i uses seeds[...] + i.
BEST_TRAIN_SEED = 100000
BEST_BROAD_SEED = 100010
BEST_BROAD_RESERVED = 10      # seeds BEST_BROAD_SEED + 0..9 are kept for broad components
BEST_CALIBRATION = {"surface": 60001, "mask": 61001, "noise": 62000}
BEST_VALIDATION = {"surface": 50001, "mask": 51001, "noise": 52000}
BEST_CELLS = 6                  # calibration / validation cells (3 families x 2 regimes)

# The VAE (core.training.vae): chunk c uses seed + c, seed + 10000 + c, seed + 20000 + c.
VAE_TRAIN_SEED = 200000
VAE_VALIDATION_SEED = 250000
VAE_STREAM_STRIDE = 10000

# The stale flag's calibration chains (core.quotes.stale): chain i of a family uses seed * 100 + i.
STALE_CALIBRATION_CHAINS = (("shifted_ssvi", 5101), ("sabr_event", 5102))


def seeds_by_purpose(max_chains: int = 100, vae_chunks: int = 1000) -> dict:
    """{purpose: set of seeds} for test, training, validation and calibration streams."""
    test = {s for c in TEST_CELLS + HESTON_CELLS + OUTSIDE_CELLS
            for s in (c.surface_seed, c.mask_seed, c.noise_seed, c.stale_seed, c.fresh_noise_seed)}
    cells = range(BEST_CELLS)
    training = set(CNN_TRAIN.values()) | {BEST_TRAIN_SEED + i for i in range(3)} | {BEST_BROAD_SEED + j for j in range(BEST_BROAD_RESERVED)}
    training |= {VAE_TRAIN_SEED + j * VAE_STREAM_STRIDE + c for j in range(3) for c in range(vae_chunks)}
    validation = set(CNN_VALIDATION.values()) | {v + i for v in BEST_VALIDATION.values() for i in cells}
    validation |= {VAE_VALIDATION_SEED + j * VAE_STREAM_STRIDE + i for j in range(3) for i in range(4)}
    calibration = {v + i for v in BEST_CALIBRATION.values() for i in cells}
    calibration |= {seed * 100 + i for _, seed in STALE_CALIBRATION_CHAINS for i in range(max_chains)}
    return {"test": test, "training": training, "validation": validation, "calibration": calibration}


def _assert_disjoint() -> None:
    groups = seeds_by_purpose()
    names = sorted(groups)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = groups[a] & groups[b]
            assert not shared, f"{a} and {b} seeds overlap: {sorted(shared)[:5]}"


_assert_disjoint()
