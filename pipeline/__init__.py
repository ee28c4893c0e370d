"""Deep-learning fundamentals as one reproducible DVC pipeline."""

import os

# MKL reads this at its first call: strict conditional numerical reproducibility makes a
# matrix product's rounding independent of memory alignment (see engine/blas.py).
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
