"""The grading sandbox: every student kernel under bubblewrap (:mod:`.bwrap`; the grader's side, its profile, kernelspec and limits: :mod:`.kernelspec`), the isolation of a
batch and its preflight check (:mod:`.isolation`), submissions taken in as data (:mod:`.intake`)
and the course's forbidden code replaced by stubs (:mod:`.stubs`). Imports nothing of the checks
or of the nbgrader integration except :mod:`.isolation` (which reads an assignment's ``FORBIDDEN``)."""
