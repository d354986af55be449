"""What the grading tests share: the ProtoNet cases (cases.py), the other assignments' cases
(maml.py, simclr.py), the pipeline of every assignment (assignment.py), hostile submissions
(adversarial.py), the session's graded batch (course.py), a term's commands (term.py) and the
hidden tests run without nbgrader (hidden.py).

Imported as ``from grading import cases``: tests/ is on ``sys.path`` (pytest's rootdir-relative
``prepend`` import of tests/conftest.py, as for tests/hub and tests/browser). pytest does not
collect tests from this folder (``norecursedirs`` in pyproject.toml).
"""
