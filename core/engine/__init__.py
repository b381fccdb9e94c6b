"""Engine numerics: the model grid and units, Black, Heston, arbitrage projections and checks, conformal intervals, classical baselines."""
