"""Method registry; importing this package registers every built-in method."""
from iufbench.methods.base import METHODS, Method, MethodContext, Scores, TrainTask
from iufbench.methods.cad import method as _cad  # noqa: F401  (registers cad_cutpaste, cad_panda)
from iufbench.methods.classic import dne as _dne  # noqa: F401  (registers cad_dne)
from iufbench.methods.classic import draem as _draem  # noqa: F401  (registers draem)
from iufbench.methods.classic import padim as _padim  # noqa: F401  (registers padim)
from iufbench.methods.classic import patchcore as _patchcore  # noqa: F401  (patchcore, patchcore_cumulative)
from iufbench.methods.continual import lvt as _lvt  # noqa: F401  (registers uniad_lvt)
from iufbench.methods.continual import lwf as _lwf  # noqa: F401  (registers uniad_lwf)
from iufbench.methods.continual import regularized as _reg  # noqa: F401  (uniad_ewc, uniad_si, uniad_mas)
from iufbench.methods.continual import replay as _replay  # noqa: F401  (registers uniad_replay)
from iufbench.methods.iuf import method as _iuf  # noqa: F401  (registers iuf and its ablations)
from iufbench.methods.uniad import method as _uniad  # noqa: F401  (registers uniad, joint)

__all__ = ["METHODS", "Method", "MethodContext", "Scores", "TrainTask"]
