"""The instructor's ~/.jupyter/nbgrader_config.py on the hub: the formgrader in the
instructor's own server (started in the home folder) reads the course directory's settings.

Copy to ~/.jupyter/nbgrader_config.py of the instructor's account; the course checkout is
~/fsl-course (change COURSE if it lives elsewhere).
"""

import os

c = get_config()  # noqa: F821 (injected by Jupyter)

COURSE = os.path.expanduser("~/fsl-course")
load_subconfig(os.path.join(COURSE, "nbgrader_config.py"))  # noqa: F821 (injected by traitlets)
