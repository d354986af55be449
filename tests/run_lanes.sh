#!/usr/bin/env bash
# `make test` without PYTEST_ARGS: the whole suite as two pytest processes side by side.
#
#   lane 1: pytest tests LECTURE_2, without BENCHES  (unit tests, browser and hub tests, and the three
#                                  grading batches it grades in the background)
#   lane 2: pytest lectures solutions BENCHES, without LECTURE_2   (the other notebooks through nbval,
#                                  FAST mode, and five of the benches' smoke tests)
#
# The benches' smoke tests (about 250 CPU-s) even the lanes: lane 1 also waits for the grading batches,
# and ran alone for its last 5-6 minutes when they were all in it. Lane 2 runs five of them; lane 1 keeps
# the SSL and siamese benches' (tests/test_ssl_bench.py, tests/test_bench_siamese.py, about 60 and 35
# CPU-s): the lanes then ended within 30 s of each other in clean-clone CI runs. With the autograde
# bench's in lane 1 as well, lane 1 ended 205 s after lane 2, since the tests that read the protonet batch
# then ran after the batch chain.
# Lecture 2 goes to lane 1 so that it runs once: tests/conftest.py deselects its nbval cells there
# when tests/test_browser.py runs it in JupyterLab (Chromium present), and nbval runs it otherwise.
#
# One process spends most of its time in single-threaded Python (a notebook's cells, a test's
# subprocess waiting): 137-142 % CPU of the 2 cores in one-process runs. Lane 2
# writes to build/test-notebooks.log, printed when both lanes are done; the exit status is the
# first failing lane's. Not pytest-xdist: each of its workers would start the session's grading
# batches and JupyterHub term (tests/conftest.py) again. Usage: tests/run_lanes.sh PYTHON
set -u
py=${1:?usage: tests/run_lanes.sh PYTHON}
mkdir -p build
log=build/test-notebooks.log
echo "lane 2 (lectures/ and solutions/ through nbval, five benches' smoke tests) runs beside this one; its report: $log"
lecture2=lectures/02_embedding_retrieval.ipynb
benches=(tests/test_bench_metric.py tests/test_bench_smoke.py tests/test_bench_transfer.py tests/test_bench_triplet.py tests/test_grading_bench.py)
"$py" -m pytest lectures solutions "${benches[@]}" --ignore="$lecture2" > "$log" 2>&1 &
lane2=$!
trap 'kill "$lane2" 2>/dev/null' INT TERM
"$py" -m pytest tests "$lecture2" "${benches[@]/#/--ignore=}"
status1=$?
wait "$lane2"
status2=$?
trap - INT TERM
echo "================ lane 2: lectures/, solutions/ and five benches' smoke tests ($log) ================"
cat "$log"
echo "lane 1 (tests/) exit status $status1, lane 2 (notebooks and benches) exit status $status2"
if (( status1 != 0 )); then exit "$status1"; fi
exit "$status2"
