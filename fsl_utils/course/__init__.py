"""Running the course: what instructors and students run, above everything else.

* :mod:`.build` — ``python -m fsl_utils.course`` (``make course``): execute and render every
  notebook, gather the results table.
* :mod:`.results` — :func:`~.results.record_result`, the headline numbers notebooks report.
* :mod:`.check` — ``python -m fsl_utils.course.check``: the students' pre-submission check.
* :mod:`.student` — ``python -m fsl_utils.course.student``: build the student repository.
* :mod:`.colab` — the set-up cell of every notebook on Google Colab.
* :mod:`.lab` — ``python -m fsl_utils.course.lab``: JupyterLab for students or instructors.
"""
