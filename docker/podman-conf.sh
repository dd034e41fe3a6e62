#!/usr/bin/env bash
# A containers.conf for podman on hosts without systemd or with low hard limits (VMs, CI runners):
# cgroupfs instead of systemd, events to a file, runc when installed, and default ulimits no higher than
# this machine's hard limits (podman's defaults above them fail with
# "setrlimit RLIMIT_NOFILE: Operation not permitted"). Usage: docker/podman-conf.sh > containers.conf
set -eu
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
pid_max=$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 32768)
[ "$nofile" = unlimited ] && nofile=1048576
{ [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ]; } && nproc=$pid_max
echo '[containers]'
echo "default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
echo '[engine]'
echo 'cgroup_manager = "cgroupfs"'
echo 'events_logger = "file"'
if command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ]; then echo 'runtime = "runc"'; fi
