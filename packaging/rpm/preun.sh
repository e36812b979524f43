# packaging/rpm/preun.sh -- %preun of the ecrcp .rpm (plain sh; $1 is 0 on removal, 1 on upgrade).
# On removal only: disables and stops both timers, then stops both services gracefully
# (copies under way finish first, see TimeoutStopSec).

if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable ecrcp.timer ecrcp-registry.timer >/dev/null 2>&1 || :
    if [ -d /run/systemd/system ]; then
        systemctl stop ecrcp.timer ecrcp-registry.timer \
            ecrcp.service ecrcp-registry.service >/dev/null 2>&1 || :
    fi
fi
