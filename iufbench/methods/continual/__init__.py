"""Continual-learning baselines on UniAD (the paper's Table 1 comparisons and two it lacks)."""
