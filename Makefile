# Learning with few labeled examples — every command installs what is missing first.
#   make course   execute every lecture and solution notebook, render them to build/
#   make test     the whole test suite (unit, notebooks in FAST mode, grading pipeline)
# Use an existing environment (e.g. conda) with: make test VENV=$$CONDA_PREFIX
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fsl-course-installed
PYTEST_ARGS ?=
FAST ?=
ASSIGNMENT ?= protonet

.PHONY: install test course lab data bench clean help release grade

help:
	@sed -n '1,5p' Makefile

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

course: install
	$(PY) -m fsl_utils.course $(if $(FAST),--fast)

lab: install
	$(PY) -m ipykernel install --user --name fsl-course --display-name "Python (fsl-course)"
	$(VENV)/bin/jupyter lab

data: install
	$(PY) -m fsl_utils.data.download

bench: install
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

release: install  # regenerate the student release assignments/$(ASSIGNMENT) from solutions/ (commit it)
	$(PY) -m fsl_utils.grading release $(ASSIGNMENT)

grade: install  # autograde grading/submitted/*/$(ASSIGNMENT), write feedback and grading/grades.csv
	$(PY) -m fsl_utils.grading grade $(ASSIGNMENT) $(if $(JOBS),--jobs $(JOBS))

clean:
	rm -rf build grading/autograded grading/feedback
