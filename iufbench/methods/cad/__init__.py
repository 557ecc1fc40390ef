"""CAD's self-supervised baselines (CutPaste, PANDA) trained continually; see method.py."""
