# packaging/rpm/postun.sh -- %postun of the ecrcp .rpm (plain sh; $1 is 0 on removal, 1 on upgrade).
# RPM has no purge: an admin-written /etc/ecrcp/images.toml stays, and so does /var/lib/ecrcp.

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 0 ]; then
    # The plugin link made by %post, and only if it is still ours.
    if [ "$(readlink /usr/libexec/docker/cli-plugins/docker-ecrcp)" = ../../../bin/ecrcp ]; then
        rm -f /usr/libexec/docker/cli-plugins/docker-ecrcp
    fi
    # /etc/ecrcp, made by %post, if the admin left nothing in it.
    rmdir /etc/ecrcp 2>/dev/null || :
fi
