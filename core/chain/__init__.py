"""The chain path: a chain's quotes in, an arbitrage-free surface on the chain's own domain out.

types       ChainQuotes (one entry per usable quote) and the ChainSurface protocol; from_quoteset
prices      forward-normalised Black prices in log space (F = 1)
svi         raw-SVI slices fitted with dense butterfly / calendar constraints
surface     SliceSurface (price interpolation between slices, rules outside them), FunctionSurface
build       build_surface: values at a chain's nodes -> SliceSurface (calendar caps, longest first)
mapping     chain <-> 13 x 17 model grid for the grid methods (normalised moneyness, log T)
ah          QuantLib's Andreasen-Huge interpolation on a chain
methods     every method on a chain: svi_fit, ah and the grid methods, all ending in build_surface
workflow    repair a quote file on its own domain: per-row values, query rows, dense export
stale       stale_scores: per-quote leave-one-out stale score and flag, scaled by each quote's bid-ask
            (chains without bid/ask: against own and adjacent expiries, noise from the chain)
The dense arbitrage check is core.engine.dense_check; the benchmark is core.evaluation.real.
"""
