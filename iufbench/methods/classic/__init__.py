"""Baselines outside the UniAD family: anomalib's PatchCore, PaDiM and DRAEM run incrementally,
a cumulative PatchCore bank, and CAD-style DNE."""
