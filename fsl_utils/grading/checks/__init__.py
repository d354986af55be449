"""The checks run in the grader: hidden tests (:mod:`.hidden`) asking a probe (:mod:`.probe`,
:mod:`.remote`) for plain data computed by the student's code, partly by kernel-side tasks
(:mod:`.kernel`). See :mod:`fsl_utils.grading` for the map."""
