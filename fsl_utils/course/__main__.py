"""``python -m fsl_utils.course``: execute and render the course (see :mod:`.build`)."""

import sys

from .build import main

sys.exit(main())
