# labkit's single-user image for Kubernetes: JupyterLab, labkit and the notebooks, Docker's
# engine (Debian's docker.io, the one the course is tested with on Debian 12), and the
# course images as one `docker save` tar that each learner's pod loads into its own daemon.
#
# FROM: Docker's official Debian 12 image (docker.io/library/debian), public: every cluster
# can pull it, or mirror it under the same name.
#
# Build from the repository's root, after making the course images' bundle there:
#
#   labkit images ensure && labkit images bundle deploy/kubernetes/course-images.tar
#   docker build -f deploy/kubernetes/singleuser.Dockerfile -t labkit-singleuser:0.1.0 .
#
# Run it under the Sysbox runtime (values.yaml): dockerd needs the user namespace and the
# virtualised /proc and /sys that Sysbox gives an unprivileged pod.
FROM debian:bookworm-slim

ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PATH=/opt/labkit/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# docker.io brings dockerd, containerd, runc and the CLI; iptables for dockerd's bridge
# (inside the pod's own network namespace); tini reaps dockerd's and the lab's children.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates curl docker.io git iproute2 iptables procps \
      python3 python3-venv tini util-linux \
 && rm -rf /var/lib/apt/lists/*

# jovyan (uid 1000, group users) is the learner: the name and ids Zero to JupyterHub's
# home volumes expect. Group docker opens the pod's daemon socket: root in the pod's
# own user namespace, which is what a Docker course hands its learner anyway.
RUN useradd --create-home --uid 1000 --gid 100 --groups docker --shell /bin/bash jovyan

# labkit as a checkout (the notebooks live beside the package: labkit.lab releases the
# student versions from them), installed editable with the `hub` extra; jupyterhub pinned
# to the chart's hub (Zero to JupyterHub 4.4.0 runs JupyterHub 5.5).
COPY pyproject.toml README.md /opt/labkit/src/
COPY labkit /opt/labkit/src/labkit
COPY notebooks /opt/labkit/src/notebooks
RUN python3 -m venv /opt/labkit/venv \
 && /opt/labkit/venv/bin/pip install --no-cache-dir -e '/opt/labkit/src[hub]' 'jupyterhub==5.5.*' \
 && /opt/labkit/venv/bin/python -c "import labkit, jupyterhub, kubespawner"

# The course images, made by `labkit images bundle` (not pulled at run time: learners'
# daemons have no way out of the pod).
COPY deploy/kubernetes/course-images.tar /opt/labkit/course-images.tar
COPY deploy/kubernetes/labkit-learner-start.sh /usr/local/bin/labkit-learner-start
RUN chmod 0755 /usr/local/bin/labkit-learner-start

WORKDIR /home/jovyan
EXPOSE 8888
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/labkit-learner-start"]
CMD ["jupyterhub-singleuser"]
