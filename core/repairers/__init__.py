"""Repair methods behind one interface (base.Repairer), their registry and weights I/O."""
