"""``python -m fsl_utils.grading release|grade ASSIGNMENT`` (see :mod:`.pipeline`)."""

import sys

from .pipeline import main

sys.exit(main())
