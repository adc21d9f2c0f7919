#!/bin/sh
# Whether one service runs, as keepalived and the skutui agent ask it:
#   service_check.sh master|both NAME ROLE_FILE STATE_DIR   keepalived's vrrp_script
#   service_check.sh running NAME                            the agent's question
# Exit 0: the service runs (or counts as running). keepalived asks every check interval, so
# the common answer costs no process: the service's pid file in /run, when it keeps one;
# without one, its init system is asked.
#
# A master-only service ("master") runs on the master alone. On any other node it counts as
# running, since a backup cannot know better, unless it failed here while this node was
# master (STATE_DIR/NAME.failed, which the agent writes): that node is not ready to take the
# floating IPs back until the service is seen running here again (the operator starts it by
# hand once) or the node leaves maintenance. STATE_DIR/NAME.starting: the agent is starting
# the service, which is not down yet.
kind=$1 name=$2 role_file=$3 state=$4
PATH=${PATH:-/usr/bin:/bin}:/usr/sbin:/usr/bin:/sbin:/bin

runs() {
    if [ -s "/run/$name.pid" ]; then
        while read -r pid _; do
            [ -z "$pid" ] || [ -d "/proc/$pid" ] || return 1
        done < "/run/$name.pid"
        return 0
    fi
    service "$name" status >/dev/null 2>&1
}

if [ "$kind" = running ]; then
    runs
    exit
fi
if [ "$kind" = master ]; then
    role=
    { read -r role < "$role_file"; } 2>/dev/null
    if [ "$role" != master ]; then
        [ -e "$state/$name.failed" ] || exit 0
        runs || exit 1
        rm -f "$state/$name.failed"
        exit 0
    fi
fi
if [ -e "$state/$name.starting" ]; then
    exit 0
fi
if runs; then
    if [ -e "$state/$name.failed" ]; then
        rm -f "$state/$name.failed"
    fi
    exit 0
fi
exit 1
