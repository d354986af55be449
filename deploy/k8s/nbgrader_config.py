"""/etc/jupyter/nbgrader_config.py of the students' image (deploy/k8s/Dockerfile): nbgrader's
exchange is the ngshare service of the hub (deploy/k8s/ngshare-values.yaml), never a shared
folder — every Zero to JupyterHub pod runs as the same uid (jovyan, 1000), so the file-system
exchange's Unix permissions would separate nobody.
"""

from ngshare_exchange import configureExchange

c = get_config()  # noqa: F821 (injected by Jupyter)

# The URL ngshare's `helm install` prints (release "ngshare" in the hub's namespace "fsl-course").
configureExchange(c, "http://ngshare.fsl-course.svc.cluster.local:8080/services/ngshare")
c.CourseDirectory.course_id = "fsl-course"
