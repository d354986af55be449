"""Kernel-side tasks of the checks, one module per assignment.

A task runs in the student's kernel (under :meth:`~..probe.LocalProbe.task`, traced for borrowed
code): it builds what the student's functions need from the arrays a check sends, calls them and
returns plain data. These modules are real, linted code, but they are readable inside the grading
sandbox, so they hold plumbing only: no hidden inputs, no expected values, no reference
implementation of a graded function (those stay in ``solutions/<assignment>/hidden_tests.py``).

An assignment's module is loaded when its first task runs (before the task is traced), so a
kernel imports only what its own assignment needs (e.g. the ProtoNet kernel never imports
``fsl_utils.ssl`` and torchvision for the SimCLR tasks).
"""

from __future__ import annotations

import importlib

from .base import Submission, Task

#: The assignments that have kernel-side tasks (``<assignment>.py`` here, each with a dict ``TASKS``).
ASSIGNMENTS = ("protonet", "maml", "simclr")


def tasks(assignment: str) -> dict[str, Task]:
    """The tasks of ``assignment``: task name -> task.

    Raises:
        ValueError: no kernel-side tasks for ``assignment``.
    """
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"no kernel-side tasks for assignment {assignment!r} (known: {', '.join(ASSIGNMENTS)})")
    return importlib.import_module(f"{__name__}.{assignment}").TASKS


def kernel_task(assignment: str, name: str) -> Task:
    """Task ``name`` of ``assignment``.

    Raises:
        ValueError: no such assignment or task.
    """
    found = tasks(assignment)
    if name not in found:
        raise ValueError(f"unknown kernel task {name!r} of {assignment!r} (known: {', '.join(found)})")
    return found[name]


__all__ = ["ASSIGNMENTS", "Submission", "Task", "kernel_task", "tasks"]
