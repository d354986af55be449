"""pytest settings for the whole course (unit tests and nbval notebook runs).

Notebooks collected by nbval run in FAST mode unless ``FSL_FAST`` is already set, and
results they record go to a temporary folder instead of ``build/``.

``OMP_WAIT_POLICY=PASSIVE`` (unless already set): PyTorch's OpenMP threads then sleep, instead of
spinning, while they wait for each other. The test session runs notebooks and benchmarks while
the grading batches keep the other core busy (tests/grading/background.py); a thread that spins
for a partner the scheduler has put aside burns the core it needs. Measured on a 2-core machine,
lecture 5 under nbval beside one busy process: 410 s wall and 417 CPU-s with the default policy,
120 s and 119 CPU-s with PASSIVE (alone: 75 s and 79 s). Set here, before anything imports torch,
so the test process, its notebook kernels and its subprocesses all inherit it.
"""

import os
import tempfile

os.environ.setdefault("FSL_FAST", "1")
os.environ.setdefault("FSL_RESULTS_DIR", tempfile.mkdtemp(prefix="fsl-results-"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
