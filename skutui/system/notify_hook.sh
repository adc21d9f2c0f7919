#!/bin/sh
# keepalived's notify hook, as skutui renders it: notify_hook.sh SKUTUI MARK REPORT STATE
#
# It reports the transition in REPORT ("STATE BOOT_ID UPTIME"; this hook is its only writer)
# and leaves it to the skutui agent, which reads keepalived's notify FIFO and marks each
# transition it takes in MARK ("STATE PHASE BOOT_ID HUNDREDTHS") before its steps run, however
# long they take. A process started per transition costs CPU exactly when the node is
# busiest, so the hook only looks for that mark. Without it within a second (no agent, or a
# stuck one), `skutui agent notify STATE BOOT_ID UPTIME` hands the transition over, with its
# moment, to the agent (started first if it is not running while keepalived is); the hook
# itself never runs a step nor writes the role.
# Times are since boot, in hundredths as /proc/uptime counts them: a wall clock stepped back
# never makes an old mark look fresh, and a mark from before a reboot never matches.
# The moment is this process's start (/proc/self/stat's starttime, in ticks of a hundredth),
# that is when keepalived forked the hook, not when a loaded machine got round to running
# it: a hook for FAULT must never look newer than the BACKUP keepalived announced after it.
skutui=$1 mark=$2 report=$3 state=$4
read -r boot < /proc/sys/kernel/random/boot_id
read -r stat < /proc/$$/stat
set -- ${stat##*) }
shift 19
up=$(( $1 / 100 )).$(( $1 % 100 / 10 ))$(( $1 % 10 ))
printf '%s %s %s\n' "$state" "$boot" "$up" > "$report.$$" && mv -f "$report.$$" "$report"
since=$(( ${up%.*} * 100 + 1${up#*.} - 100 - 100 ))
tries=0
while [ "$tries" -lt 100 ]; do
    if { read -r done phase at_boot at < "$mark"; } 2>/dev/null && [ "$done" = "$state" ] \
            && [ -n "$phase" ] && [ "$at_boot" = "$boot" ] && [ "${at:-0}" -ge "$since" ] 2>/dev/null; then
        exit 0
    fi
    sleep 0.01
    tries=$((tries + 1))
done
exec "$skutui" agent notify "$state" "$boot" "$up"
