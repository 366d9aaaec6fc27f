"""``python -m nnopt.optim.kernels``: build (or find) the native CPU kernels, say where.

``make setup`` runs it, so that the first training run does not pause for a build.
"""

import sys

from nnopt.optim.kernels import build

lib = build.load()
if lib is None:
    print(f"nnopt: native kernels unavailable: {build.failure_reason()}", file=sys.stderr)
    raise SystemExit(1)
print(f"nnopt: native CPU kernels ready: {lib._name}")
