"""Training-time model code (torch, LightGBM, scikit-learn)."""
