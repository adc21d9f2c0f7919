#!/bin/sh
# keepalived's notify hook, as skutui renders it: notify_hook.sh SKUTUI MARK STATE
#
# The skutui agent runs each transition the moment keepalived's notify FIFO reports it, then
# writes "STATE TIME_NS" to MARK. This hook only checks for that mark: a process started per
# transition costs CPU exactly when the node is busiest. Without a fresh mark within a
# second (no agent running, or a stuck one), the transition runs here instead.
skutui=$1 mark=$2 state=$3
since=$(( $(date +%s%N) - 1000000000 ))
tries=0
while [ "$tries" -lt 100 ]; do
    if { read -r done at < "$mark"; } 2>/dev/null && [ "$done" = "$state" ] \
            && [ "${at:-0}" -ge "$since" ] 2>/dev/null; then
        exit 0
    fi
    sleep 0.01
    tries=$((tries + 1))
done
exec "$skutui" agent notify "$state"
