#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for labrunner's SLURM tests and for trying
# `labrunner run --executor slurm` locally. Debian packages: slurm-wlm slurmdbd munge
# mariadb-server (`scripts/slurm-cluster.sh install` installs them). Needs root.
#
#   scripts/slurm-cluster.sh install   apt-get the packages
#   scripts/slurm-cluster.sh start     write the config, start munge, MariaDB, slurmdbd, slurmctld, slurmd
#   scripts/slurm-cluster.sh status    sinfo, and srun hostname as a smoke test
#   scripts/slurm-cluster.sh stop      stop the daemons (the config stays)
#
# Accounting (slurmdbd on MariaDB) is on because submitit reads job states with sacct.
set -euo pipefail

STATE=${LABRUNNER_SLURM_STATE:-/var/lib/labrunner-slurm}
CONF_DIR=/etc/slurm
HOST=$(hostname -s)
CLUSTER=labrunner

say() { printf 'slurm-cluster: %s\n' "$*"; }

need_root() {
  [ "$(id -u)" = 0 ] || { say "needs root"; exit 2; }
}

install() {
  need_root
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm slurmdbd munge mariadb-server >/dev/null
}

write_config() {
  local cpus mem
  cpus=$(nproc)
  # RealMemory a little below the machine's, in MiB, so slurmd accepts the node.
  mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  mkdir -p "$CONF_DIR" "$STATE"/{ctld,slurmd,log,mysql,run}
  cat >"$CONF_DIR/slurm.conf" <<CONF
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$HOST CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  cat >"$CONF_DIR/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=labrunner
StoragePort=3306
CONF
  chmod 600 "$CONF_DIR/slurmdbd.conf"
  rm -f "$CONF_DIR/cgroup.conf"
}

wait_for() { # wait_for SECONDS COMMAND...
  local limit=$1; shift
  for _ in $(seq "$((limit * 4))"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  return 1
}

start() {
  need_root
  for cmd in slurmctld slurmd slurmdbd munged mariadbd; do
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || { say "$cmd is not installed (run: $0 install)"; exit 2; }
  done
  write_config
  # munge: a key, then the daemon
  if [ ! -s /etc/munge/munge.key ]; then
    /usr/sbin/mungekey --create --force >/dev/null 2>&1 || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
  fi
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
  pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged --force 2>/dev/null || /usr/sbin/munged --force
  wait_for 10 munge -n || { say "munge did not start"; exit 1; }
  # MariaDB for slurmdbd
  if ! pgrep -x mariadbd >/dev/null; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null 2>&1
    (mysqld_safe --user=mysql --skip-networking=0 --bind-address=127.0.0.1 >/dev/null 2>&1 &)
  fi
  wait_for 30 mariadb -e 'select 1' || { say "MariaDB did not start"; exit 1; }
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'labrunner';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  pgrep -x slurmdbd >/dev/null || /usr/sbin/slurmdbd
  wait_for 30 sacctmgr -n list cluster || { say "slurmdbd did not start (see $STATE/log/slurmdbd.log)"; exit 1; }
  sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true
  pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
  wait_for 30 scontrol ping || { say "slurmctld did not start (see $STATE/log/slurmctld.log)"; exit 1; }
  pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
  wait_for 30 sh -c "sinfo -h -N -o %T | grep -qE '^(idle|mixed|allocated)'" || {
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    wait_for 15 sh -c "sinfo -h -N -o %T | grep -qE '^(idle|mixed|allocated)'" || { say "the node did not come up (see $STATE/log/slurmd.log)"; exit 1; }
  }
  timeout 60 srun -N1 -n1 hostname >/dev/null || { say "srun hostname failed"; exit 1; }
  say "up: node $HOST, $(nproc) CPUs, partition debug"
}

status() {
  sinfo
  timeout 60 srun -N1 -n1 hostname
}

gone() { ! pgrep -x "$1" >/dev/null; }

stop() {
  need_root
  for d in slurmd slurmctld slurmdbd; do pkill -x "$d" 2>/dev/null || true; done
  mariadb-admin shutdown 2>/dev/null || pkill -x mariadbd 2>/dev/null || true
  pkill -x munged 2>/dev/null || true
  # until they have exited: a start right after would find them still there and start none
  for d in slurmd slurmctld slurmdbd mariadbd munged; do
    wait_for 30 gone "$d" || { say "$d did not stop"; exit 1; }
  done
  say "stopped"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  status) status ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|status|stop" >&2; exit 2 ;;
esac
