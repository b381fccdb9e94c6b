"""Grid, units, pricing and arbitrage engines."""
