"""Data: synthetic generators, drift scenarios, loaders and validation."""
