"""~/.jupyter/nbgrader_config.py of the instructor's account on the grading machine: a VM outside
the cluster with the private course checkout (make install-instructor, make grade in bubblewrap).
nbgrader's release, collect and release_feedback reach the hub's ngshare through the hub's public
address; ngshare_exchange authenticates as $JUPYTERHUB_USER with $JUPYTERHUB_API_TOKEN, a token of
the instructor's hub account (the hub's Token page, /hub/token):

    export JUPYTERHUB_USER=instructor JUPYTERHUB_API_TOKEN=<token>
    cd ~/fsl-course && nbgrader collect protonet && make grade ASSIGNMENT=protonet

Not tested (no cluster here): see deploy/README.md.
"""

from ngshare_exchange import configureExchange

c = get_config()  # noqa: F821 (injected by Jupyter)

configureExchange(c, "https://hub.example.org/services/ngshare")
