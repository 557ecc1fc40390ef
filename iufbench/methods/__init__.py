"""Method registry; importing this package registers every built-in method."""
from iufbench.methods.base import METHODS, Method, MethodContext, Scores, TrainTask
from iufbench.methods.iuf import method as _iuf  # noqa: F401  (registers iuf and its ablations)
from iufbench.methods.uniad import method as _uniad  # noqa: F401  (registers uniad, joint)

__all__ = ["METHODS", "Method", "MethodContext", "Scores", "TrainTask"]
