# numba-cuda 0.30.4 registers an overload for np.row_stack, which numpy 2.5 removed: give it
# the alias back (device-machine environment shim, not part of aq_runtime).
import numpy as np

if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack
