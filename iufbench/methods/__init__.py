"""Method registry; importing this package registers every built-in method."""
from iufbench.methods.base import METHODS, Method, MethodContext, Scores, TrainTask
from iufbench.methods.continual import lwf as _lwf  # noqa: F401  (registers uniad_lwf)
from iufbench.methods.continual import regularized as _reg  # noqa: F401  (uniad_ewc, uniad_si, uniad_mas)
from iufbench.methods.continual import replay as _replay  # noqa: F401  (registers uniad_replay)
from iufbench.methods.iuf import method as _iuf  # noqa: F401  (registers iuf and its ablations)
from iufbench.methods.uniad import method as _uniad  # noqa: F401  (registers uniad, joint)

__all__ = ["METHODS", "Method", "MethodContext", "Scores", "TrainTask"]
