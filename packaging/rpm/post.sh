# packaging/rpm/post.sh -- %post of the ecrcp .rpm (plain sh; $1 is 1 on install, 2 or more on upgrade).
# What debian/postinst does: no service is ever started; on install, the timers the presets
# enable (ecrcp.timer by the package's, ecrcp-registry.timer only by an admin's) are
# started; an upgrade restarts only the timers that run, so a sync under way goes on.

# The admin writes images.toml here (cargo-generate-rpm 0.21.1 fails on directory assets).
# 0755, not 0750: the services' dynamic user reads images.toml; the AWS files beside it
# stay root-only, as systemd reads them for it.
mkdir -p /etc/ecrcp
# /etc/default/ecrcp may hold a proxy's password. Earlier packages shipped it 0644, and an
# edited %config(noreplace) file keeps its mode: make it 0600 when root owns it and every
# user may read it (an admin's 0640 for a group of theirs stays).
if [ -f /etc/default/ecrcp ] && [ "$(stat -c %u /etc/default/ecrcp)" = 0 ]; then
    case "$(stat -c %a /etc/default/ecrcp)" in
    *[4567]) chmod go-rwx /etc/default/ecrcp ;;
    esac
fi
# cargo-generate-rpm has no symlink asset: the docker CLI plugin link is made here.
mkdir -p /usr/libexec/docker/cli-plugins
ln -sfn ../../../bin/ecrcp /usr/libexec/docker/cli-plugins/docker-ecrcp

if [ "$1" -eq 1 ]; then
    systemctl --no-reload preset ecrcp.timer ecrcp-registry.timer >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        if systemctl --quiet is-enabled ecrcp.timer 2>/dev/null; then
            systemctl start ecrcp.timer >/dev/null 2>&1 || :
        fi
        if systemctl --quiet is-enabled ecrcp-registry.timer 2>/dev/null; then
            systemctl start ecrcp-registry.timer >/dev/null 2>&1 || :
        fi
    else
        systemctl try-restart ecrcp.timer ecrcp-registry.timer >/dev/null 2>&1 || :
    fi
fi
