"""Small synthetic chains for the chain-path tests (fast: a few expiries, a coarse ladder)."""
from __future__ import annotations

import numpy as np
import pytest

from core.chain.types import ChainQuotes
from core.synth.chains import ChainSpec, make_chain, surface_function


def chain_from_frame(df) -> ChainQuotes:
    n = len(df)
    return ChainQuotes(T=df["T"], k=df["k"], iv=df["iv"], iv_bid=df["bid"], iv_ask=df["ask"], forward=df["forward"],
                       discount=df["discount"], weight=np.ones(n))


SMALL = ChainSpec(weeklies=1, monthlies=3, horizon_years=1.2, strike_step_factor=4.0)


@pytest.fixture(scope="session")
def small_frame():
    return make_chain(surface_function("shifted_ssvi", 11), SMALL, seed=3)


@pytest.fixture(scope="session")
def small_chain(small_frame) -> ChainQuotes:
    return chain_from_frame(small_frame)
