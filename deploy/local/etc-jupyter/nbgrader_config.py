"""nbgrader settings every user of the hub shares: install as /etc/jupyter/nbgrader_config.py.

Students fetch and submit through this exchange folder; the instructor releases, collects and
releases feedback through it (from the course directory, whose own nbgrader_config.py sets
the course id "fsl-course" and the grading folders). Create the folder once, as root:

    mkdir -p /srv/nbgrader/exchange && chmod 1777 /srv/nbgrader/exchange

(1777: everyone may create their course folder in it, nobody may rename or delete anyone
else's — without the sticky bit a student could replace the course's folder with their own.)
"""

import os

c = get_config()  # noqa: F821 (injected by Jupyter)

c.Exchange.root = os.environ.get("FSL_EXCHANGE_ROOT", "/srv/nbgrader/exchange")
c.CourseDirectory.course_id = "fsl-course"
