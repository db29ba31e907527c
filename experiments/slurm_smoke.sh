#!/usr/bin/env bash
# Opt-in: start a single-node Slurm on this machine (Debian packages, root) and run a small sweep
# through hydra-submitit-launcher's submitit_slurm (conf/hydra/launcher/rnnlab_slurm.yaml).
#   bash experiments/slurm_smoke.sh [python]      # python: the venv's interpreter
# Leaves results in results/slurm_smoke/. Stops the daemons it started on exit.
set -euo pipefail
PY=${1:-python}
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if ! command -v slurmctld >/dev/null; then
  apt-get update -qq && apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi
"$PY" -m pip install --quiet -e '.[slurm]'

CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
HOST=$(hostname -s)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=rnnlab
SlurmctldHost=$HOST(127.0.0.1)
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
[ -f /etc/munge/munge.key ] || (dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null)
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
su -s /bin/sh munge -c "/usr/sbin/munged --force"
slurmctld
slurmd
trap 'pkill slurmd || true; pkill slurmctld || true; pkill munged || true' EXIT
for _ in $(seq 30); do sinfo -h -o %T 2>/dev/null | grep -qE "idle|mix" && break; sleep 1; done
sinfo

"$PY" experiments/decay.py -m sweep=quick hydra/launcher=rnnlab_slurm \
  hydra.launcher.partition=debug hydra.launcher.cpus_per_task=1 hydra.launcher.mem_gb=1 \
  hydra.launcher.timeout_min=10 hydra.sweep.dir=results/slurm_smoke \
  model.activation=tanh,relu model.spectral_radius=0.5,2.0 data.seq_len=20
