"""The chain path: a chain's quotes in, an arbitrage-free surface on the chain's own domain out."""
