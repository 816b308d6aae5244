#!/bin/sh
# The learner pod's entry point (singleuser.Dockerfile), run as root in the pod's user
# namespace (Sysbox): start the learner's dockerd, load the course images into it, copy
# the student notebooks missing from the learner's home, then run the lab (KubeSpawner's
# command, "$@") as jovyan. Any failure stops the pod, and the hub shows the spawn failed.
set -eu

LEARNER_UID=1000
LEARNER_GID=100
HOME_DIR=/home/jovyan
IMAGES=/opt/labkit/course-images.tar
LOG=/var/log/labkit-dockerd.log

# dockerd on the pod's usual socket, group docker (jovyan); its data root /var/lib/docker
# is a volume Sysbox gives every pod, so it is empty at each start.
dockerd --host=unix:///var/run/docker.sock --group=docker >"$LOG" 2>&1 &

# Wait for the daemon to answer, 60 s at most.
tries=0
until docker version >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 120 ]; then
        echo "labkit: the learner's dockerd did not answer in 60 s; its log:" >&2
        tail -n 40 "$LOG" >&2
        exit 1
    fi
    sleep 0.5
done

if [ -f "$IMAGES" ]; then
    labkit images load -q "$IMAGES"
fi

# The home volume is new and root's on a first start.
chown "$LEARNER_UID:$LEARNER_GID" "$HOME_DIR"

as_learner() {
    setpriv --reuid="$LEARNER_UID" --regid="$LEARNER_GID" --init-groups \
        env HOME="$HOME_DIR" USER=jovyan LOGNAME=jovyan "$@"
}

# The student notebooks the learner does not have yet, written as the learner.
as_learner python -m labkit.lab --no-start --workspace="${LABKIT_WORKSPACE:-$HOME_DIR/labkit-work}"

cd "$HOME_DIR"
exec setpriv --reuid="$LEARNER_UID" --regid="$LEARNER_GID" --init-groups \
    env HOME="$HOME_DIR" USER=jovyan LOGNAME=jovyan "$@"
