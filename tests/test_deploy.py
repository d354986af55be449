"""The deployment files under deploy/ agree with each other and with the course (no cluster is
started: deploy/README.md says what was run where). deploy/local/ is run for real by
tests/test_hub.py."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"


def _env_of_dockerfile() -> dict[str, str]:
    text = (K8S / "Dockerfile").read_text().replace("\\\n", " ")
    env = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return env


def test_python_config_files_parse():
    for path in sorted((ROOT / "deploy").rglob("*.py")):
        ast.parse(path.read_text(), filename=str(path))
    for path in sorted((ROOT / "deploy").rglob("*.json")):
        json.loads(path.read_text())


def test_kubernetes_files_agree():
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    ngshare = yaml.safe_load((K8S / "ngshare-values.yaml").read_text())
    env = _env_of_dockerfile()
    mounts = {m["mountPath"] for m in values["singleuser"]["storage"]["extraVolumeMounts"]}
    assert env["FSL_DATA_DIR"] in mounts, "the image's FSL_DATA_DIR must be where values.yaml mounts the datasets"
    assert values["hub"]["services"]["ngshare"]["api_token"] == ngshare["ngshare"]["hub_api_token"], "one ngshare token in both files"
    url = values["hub"]["services"]["ngshare"]["url"]
    assert f'"{url}/services/ngshare"' in (K8S / "nbgrader_config.py").read_text(), "the image's nbgrader_config.py must point at the hub's ngshare service"
    assert values["singleuser"]["image"]["name"] in (K8S / "Dockerfile").read_text(), "values.yaml must use the image the Dockerfile builds"
    assert values["singleuser"]["networkPolicy"]["egressAllowRules"]["privateIPs"] is True, "user pods must reach ngshare"
    assert 'course_id = "fsl-course"' in (K8S / "nbgrader_config.py").read_text()
    assert 'course_id = "fsl-course"' in (ROOT / "nbgrader_config.py").read_text()


def test_students_config_switches_off_what_fsl_utils_lab_switches_off():
    """deploy/local/students/ (one machine, shared environment) and `python -m fsl_utils.course.lab --student`
    (an image's environment) must agree on what students do not get."""
    from fsl_utils.course.lab import INSTRUCTOR_LAB_PLUGINS, INSTRUCTOR_SERVER_EXTENSION

    students = ROOT / "deploy" / "local" / "students"
    server = json.loads((students / "jupyter_server_config.json").read_text())["ServerApp"]["jpserver_extensions"]
    lab = json.loads((students / "labconfig" / "page_config.json").read_text())["disabledExtensions"]
    assert server == {INSTRUCTOR_SERVER_EXTENSION: False}
    assert lab == dict.fromkeys(INSTRUCTOR_LAB_PLUGINS, True)
