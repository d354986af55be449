"""pytest settings for the whole course (unit tests and nbval notebook runs).

Notebooks collected by nbval run in FAST mode unless ``FSL_FAST`` is already set, and
results they record go to a temporary folder instead of ``build/``.
"""

import os
import tempfile

os.environ.setdefault("FSL_FAST", "1")
os.environ.setdefault("FSL_RESULTS_DIR", tempfile.mkdtemp(prefix="fsl-results-"))
