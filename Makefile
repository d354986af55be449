# Learning with few labeled examples — every command installs what is missing first (into .venv).
#   make lab          install the course, download the data into data/, open JupyterLab
#   make lab CPU=1    the same with the small CPU-only PyTorch (first install only)
#   make data         download Omniglot and CIFAR-10 into data/ (needs internet)
#   make course       run every notebook and render the course to build/index.html (FAST=1: quick budgets)
# Use an existing environment (e.g. conda) with: make lab VENV=$$CONDA_PREFIX
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fsl-course-installed
FAST ?=
CPU ?=
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: help install lab data course clean

help:
	@sed -n '1,7p' Makefile

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(if $(CPU),$(PY) -m pip install torch torchvision --index-url $(TORCH_CPU_INDEX))
	$(PY) -m pip install -e .
	@touch $(STAMP)

install: $(STAMP)

lab: install data
	$(PY) -m ipykernel install --user --name fsl-course --display-name "Python (fsl-course)"
	$(VENV)/bin/jupyter lab

data: install
	$(PY) -m fsl_utils.data.download

COURSE_STAMP := $(VENV)/.fsl-course-course-installed

$(COURSE_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -e ".[course]"
	@touch $(COURSE_STAMP)

course: $(COURSE_STAMP)  # MathJax for equations that render offline (the course extra)
	$(PY) -m fsl_utils.course $(if $(FAST),--fast)

clean:
	rm -rf build grading/autograded grading/feedback

# ---- instructors and maintainers (not in the student repository built by `make student`) ----
#   make test                       the whole test suite (unit, notebooks in FAST mode, grading, browser)
#   make release ASSIGNMENT=...     regenerate assignments/<name>/ from solutions/ (commit it)
#   make roster FILE=students.csv   import the students (id,first_name,last_name,email) into the gradebook
#   make deadlines FILE=due.csv     import the due dates (name,duedate with a time zone) into the gradebook
#   make grade ASSIGNMENT=...       autograde the new and changed grading/submitted/*/<name>/ under bubblewrap
#                                   (FORCE=1: all; NO_SANDBOX=1: without isolation), then feedback
#   make feedback ASSIGNMENT=...    feedback (with the formgrader's manual grades) and grading/grades.csv; no autograding
#   make student [REPO=...]         the student repository in build/student/ (no solutions, no hidden tests)
#   make bench                      every bench/*.py script; figures in bench/results/*.json
INSTRUCTOR_STAMP := $(VENV)/.fsl-course-instructor-installed
DEV_STAMP := $(VENV)/.fsl-course-dev-installed
PYTEST_ARGS ?=
ASSIGNMENT ?= protonet
REPO ?=

.PHONY: install-instructor install-dev test bench release grade feedback roster deadlines student

$(INSTRUCTOR_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -e ".[instructor]"
	@touch $(INSTRUCTOR_STAMP)

$(DEV_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -e ".[dev]"
	@touch $(DEV_STAMP) $(INSTRUCTOR_STAMP) $(COURSE_STAMP)

install-instructor: $(INSTRUCTOR_STAMP)

install-dev: $(DEV_STAMP)

test: install-dev  # the whole suite in two lanes (tests/run_lanes.sh); with PYTEST_ARGS, one pytest run with them
	@if [ -n "$(PYTEST_ARGS)" ]; then $(PY) -m pytest $(PYTEST_ARGS); else bash tests/run_lanes.sh $(PY); fi

bench: install-dev
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

release: install-instructor  # regenerate the student release assignments/$(ASSIGNMENT) from solutions/ (commit it)
	$(PY) -m fsl_utils.grading release $(ASSIGNMENT)

grade: install-instructor  # autograde the new and changed grading/submitted/*/$(ASSIGNMENT) under bubblewrap (FORCE=1: all), then `make feedback`
	$(PY) -m fsl_utils.grading grade $(ASSIGNMENT) $(if $(JOBS),--jobs $(JOBS)) $(if $(FORCE),--force) $(if $(NO_SANDBOX),--no-sandbox)

feedback: install-instructor  # feedback with the formgrader's manual grades and comments, and grading/grades.csv; no autograding
	$(PY) -m fsl_utils.grading feedback $(ASSIGNMENT)

roster: install-instructor  # import the students (CSV: id,first_name,last_name,email) into the gradebook
	@test -n "$(FILE)" || { echo "usage: make roster FILE=students.csv (columns id,first_name,last_name,email)" >&2; exit 2; }
	$(PY) -m fsl_utils.grading roster "$(FILE)"

deadlines: install-instructor  # import the due dates (CSV: name,duedate with a time zone) into the gradebook
	@test -n "$(FILE)" || { echo "usage: make deadlines FILE=deadlines.csv (columns name,duedate)" >&2; exit 2; }
	$(PY) -m fsl_utils.grading deadlines "$(FILE)"

student: install  # the student repository: build/student/ (push it to the public repository)
	$(PY) -m fsl_utils.course.student build/student $(if $(REPO),--repository $(REPO))
