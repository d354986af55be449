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

One thread per process (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` = 1,
unless already set): ``make test`` runs two pytest lanes beside the grading batches' kernels, so
the cores are always busy, and a second thread in a process only adds hand-offs (PyTorch's
intra-op threads, NumPy's and scikit-learn's BLAS). Measured on a 2-core machine, each lecture
run with two threads and with one at the same time (FAST mode, CPU-s user + system):
lecture 1 43.3 -> 36.5, lecture 5 100.2 -> 95.1, lecture 6 71.0 -> 57.8, lecture 9 73.1 -> 60.9;
each also ended sooner. Lectures 3 and 4 set one thread themselves; the benches' smoke tests
pass ``--threads 1``; the grading sandbox sets its kernels' own.

``GLIBC_TUNABLES`` (unless already set): glibc's malloc never returns memory to the system
(``mmap_max=0``: no block gets its own mapping; ``trim_threshold`` 4 GiB: the heap is not
trimmed). By default every tensor above a few MiB is a fresh mapping that the kernel zeroes and
faults in page by page, then unmaps when the tensor is freed, once per training step. Measured on
a 2-core machine, each lecture alone under nbval (CPU-s, user + system): lecture 5 134.8 -> 107.3,
lecture 9 91.4 -> 77.9; with the milder ``mmap_threshold=32 MiB`` lectures 3, 4 and 6 went
135.4 -> 91.5, 69.9 -> 59.3 and 77.8 -> 73.2. Read by each new process at its start, so it
reaches the kernels and subprocesses this session starts, not this process itself. The grading
sandbox's kernels get the same value in their fixed environment (``MALLOC_TUNABLES``).

nbval's output timeout: after a cell's ``execute_reply``, nbval waits for each further message of
the kernel (its outputs, then the ``idle`` status) for a hard-coded 5 s (``IPyNbCell.output_timeout``;
``--nbval-cell-timeout`` does not change it, computationalmodelling/nbval#136 and #231), then fails
the cell with "Timeout of 5 seconds exceeded waiting for output" and every later cell of the
notebook. On a busy 2-core CI machine that is not enough: lecture 9's cell 4 failed that way in a
CI run (stop 36) while lane 1 graded a batch beside it. The hook below sets it to
``NBVAL_OUTPUT_TIMEOUT`` on every nbval cell, and stops the session with a clear error if a later
nbval no longer has the attribute.
"""

import os
import tempfile

import pytest

os.environ.setdefault("FSL_FAST", "1")
os.environ.setdefault("FSL_RESULTS_DIR", tempfile.mkdtemp(prefix="fsl-results-"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
for _threads in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

from fsl_utils.grading.sandbox.kernelspec import MALLOC_TUNABLES  # noqa: E402 (after FSL_FAST, read when fsl_utils is imported)

os.environ.setdefault("GLIBC_TUNABLES", MALLOC_TUNABLES)


#: Seconds nbval waits for each message of a cell's kernel after the cell's reply (nbval's own: 5).
NBVAL_OUTPUT_TIMEOUT = 120


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each nbval cell ``NBVAL_OUTPUT_TIMEOUT`` s, not 5 s, for the outputs that follow its reply."""
    for item in items:
        if type(item).__module__ != "nbval.plugin":
            continue
        if not hasattr(item, "output_timeout"):
            raise pytest.UsageError(f"nbval's {type(item).__name__} has no output_timeout attribute any more, so conftest.py cannot "
                                    "raise nbval's 5-second output timeout: install nbval 0.11 (pip install 'nbval==0.11.*') "
                                    "or teach conftest.py the new nbval's setting.")
        item.output_timeout = NBVAL_OUTPUT_TIMEOUT
