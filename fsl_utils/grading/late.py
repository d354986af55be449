"""Late submissions: the course's penalty and the time stamps of an LMS archive.

* :class:`LatePenalty` — nbgrader's late-submission plugin (``AssignLatePenalties.plugin_class``
  in ``nbgrader_config.py``): after a grace period, each started day late costs
  ``percent_per_day`` percent of the notebook's maximum score. nbgrader computes how late a
  submission is from the assignment's due date (``make deadlines``) and the submission's
  ``timestamp.txt`` (written by ``nbgrader collect`` and ``nbgrader zip_collect``), stores
  the penalty when it autogrades the submission, shows it in the feedback and subtracts it
  in ``grades.csv`` (``raw_score``, ``late_submission_penalty``, ``score``).
* :class:`LmsFileNames` — nbgrader's file-name collector for ``nbgrader zip_collect`` with
  the LMS's local time zone: an archive's time stamps carry none, and nbgrader would read
  them as UTC.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Optional

from nbgrader.plugins import BasePlugin, FileNameCollectorPlugin
from traitlets import Float, Unicode

DAY = 24 * 3600


class LatePenalty(BasePlugin):
    """``percent_per_day`` % of the notebook's maximum score per started day late (counted
    from the due date), nothing within ``grace_minutes``; at most the whole score."""

    percent_per_day = Float(10.0, help="percent of the notebook's maximum score lost per started day late").tag(config=True)
    grace_minutes = Float(15.0, help="minutes after the due date without penalty (clock differences, slow uploads)").tag(config=True)

    def penalty(self, seconds_late: float, max_score: float) -> float:
        """Points lost by a submission ``seconds_late`` after the due date."""
        if seconds_late <= 60 * self.grace_minutes:
            return 0.0
        days = math.ceil(seconds_late / DAY)
        return round(min(max_score, days * self.percent_per_day / 100 * max_score), 2)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> Optional[float]:
        # nbgrader's AssignLatePenalties (the parent) has the gradebook open on this notebook.
        parent = self.parent
        try:
            notebook = parent.gradebook.find_notebook(parent.notebook_id, parent.assignment_id)
        except AttributeError as err:
            raise RuntimeError("LatePenalty must be used as AssignLatePenalties.plugin_class (it reads the notebook's "
                               "maximum score from the gradebook nbgrader has open)") from err
        points = self.penalty(total_seconds_late, notebook.max_score)
        self.log.warning("%s is %.1f hours late: penalty %.2f of %.2f points (%g%% per started day after %g minutes)",
                         student_id, total_seconds_late / 3600, points, notebook.max_score, self.percent_per_day, self.grace_minutes)
        return points or None


class LmsFileNames(FileNameCollectorPlugin):
    """nbgrader's collector (``named_regexp`` on each extracted file's path), with the
    ``timestamp`` group read with ``timestamp_format`` in the LMS's ``timezone``."""

    timestamp_format = Unicode("%Y-%m-%d-%H-%M-%S", help="strptime format of the timestamp group").tag(config=True)
    timezone = Unicode("UTC", help="IANA time zone of the LMS's time stamps, e.g. Europe/Helsinki").tag(config=True)

    def collect(self, submitted_file: str) -> Optional[dict]:
        info = super().collect(submitted_file)
        if info and info.get("timestamp"):
            from dateutil.tz import gettz

            zone = gettz(self.timezone)
            if zone is None:
                raise ValueError(f"LmsFileNames.timezone = {self.timezone!r} is not a time zone: use an IANA name such as Europe/Helsinki")
            try:
                local = datetime.strptime(info["timestamp"], self.timestamp_format)
            except ValueError as err:
                raise ValueError(f"{submitted_file}: time stamp {info['timestamp']!r} does not match "
                                 f"LmsFileNames.timestamp_format {self.timestamp_format!r}") from err
            info["timestamp"] = local.replace(tzinfo=zone).isoformat()  # nbgrader's parse_utc converts it to UTC
        return info
