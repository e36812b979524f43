# shellcheck shell=bash
# benches/fast-path.sh -- the benchmarks' direct path to the test bed's registries, around
# the bed's counting fronts. Sourced (not run) inside the bed by benches/engines and
# benches/sync-scale, which set HUB, ECR (the registry names), WORK (a scratch directory)
# and say() (their message function) before sourcing it.
#
# The bed's fronts (tests/testbed/front.py, hub_front.py) count requests and bytes, but
# they are Python TLS proxies, which may cap throughput and spend far more CPU per request
# than a registry: TIMED rounds bypass them. socat (OpenSSL, C) terminates TLS with the
# bed's certificate on fresh loopback addresses and forwards to the registries' plain
# ports, and a hosts file bind-mounted over /etc/hosts (in the bed's private mount
# namespace) sends the hub's and ECR's names there. auth.docker.io (the token server, in
# hub_front.py) and moto stay where they are. The fronts' counters stay readable on either
# path (front_stats), so a timed round can check that it sent nothing through them.
#
#     fast_path_start              # socat, + a second ECR registry that uploads can use
#     fast_path_start --no-uploads # socat straight to the bed's own ECR registry (reads only)
#     fast_path_on / fast_path_off # the hosts file in / out (each may wait FAST_PATH_SETTLE)
#     fast_path_stop               # undo everything; also runs on any exit (trap)
#
# Why a second ECR registry for uploads: the bed's ECR registry builds absolute https://
# upload URLs from the X-Forwarded-Proto header the front adds, which socat cannot add; the
# second one runs on the fake ECR's storage, configuration and credentials with relative
# upload URLs. A pass that uploads nothing (a no-change sync) needs none of this.

FAST_HUB_IP=${FAST_HUB_IP:-127.0.0.12}
FAST_ECR_IP=${FAST_ECR_IP:-127.0.0.13}
# Seconds to wait after switching hosts files: Go's resolver (dockerd, skopeo) rereads
# /etc/hosts at most every 5 s. glibc's getaddrinfo (ecrcp) reads it on each lookup, so a
# bench that runs no Go client may set 0.
FAST_PATH_SETTLE=${FAST_PATH_SETTLE:-6}

# The fronts' addresses, read before the fast path's hosts file hides them.
declare -A FRONT_IP
for _host in "$HUB" "$ECR"; do
  FRONT_IP[$_host]=$(getent hosts "$_host" | awk '{ print $1; exit }')
  [[ -n ${FRONT_IP[$_host]} ]] || { say "fast-path: $_host does not resolve (not in the test bed?)"; exit 1; }
done
unset _host

# front_stats HOST [QUERY] -> the front's /_testbed/stats JSON, on either path
front_stats() {
  curl -sf --resolve "$1:443:${FRONT_IP[$1]}" "https://$1/_testbed/stats${2:+?$2}"
}
# requests both fronts have forwarded so far (a timed round must not move this)
fronts_requests() {
  echo $(($(front_stats "$HUB" | jq '.requests') + $(front_stats "$ECR" | jq '.requests')))
}

FAST_PIDS=()
FAST_HOSTS_MOUNTED=0
fast_start() { # fast_start LOG CMD...
  local log=$1
  shift
  "$@" </dev/null >>"$log" 2>&1 &
  FAST_PIDS+=("$!")
}
# config_addr FILE -> the addr of a bed registry's config.yml
config_addr() { sed -n 's/^  addr: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$1"; }

# shellcheck disable=SC2120 # its one argument is optional
fast_path_start() { # fast_path_start [--no-uploads]
  local tls="cert=$ECRCP_TESTBED/tls/server.crt,key=$ECRCP_TESTBED/tls/server.key,verify=0"
  local ecr_plain hub_plain ecr_target
  ecr_plain=$(config_addr "$ECRCP_TESTBED/ecr/config.yml")
  hub_plain=$(config_addr "$ECRCP_TESTBED/hub/config.yml")
  [[ -n $ecr_plain && -n $hub_plain ]] \
    || { say "fast-path: no addr in $ECRCP_TESTBED/ecr/config.yml or hub/config.yml"; exit 1; }
  if [[ ${1:-} == --no-uploads ]]; then
    ecr_target=$ecr_plain
  else
    # the second ECR registry: the bed's ECR configuration (storage, htpasswd, secret) on
    # another address, answering relative upload URLs
    sed "s/^  addr: .*/  addr: \"$FAST_ECR_IP:5000\"\n  relativeurls: true/" \
      "$ECRCP_TESTBED/ecr/config.yml" >"$WORK/ecr-direct.yml"
    fast_start "$WORK/ecr-direct.log" docker-registry serve "$WORK/ecr-direct.yml"
    ecr_target=$FAST_ECR_IP:5000
  fi
  fast_start "$WORK/socat-hub.log" socat -b 262144 \
    "OPENSSL-LISTEN:443,bind=$FAST_HUB_IP,reuseaddr,fork,$tls" "TCP:$hub_plain"
  fast_start "$WORK/socat-ecr.log" socat -b 262144 \
    "OPENSSL-LISTEN:443,bind=$FAST_ECR_IP,reuseaddr,fork,$tls" "TCP:$ecr_target"
  # the bed's hosts file with the hub's and ECR's names moved to the fast addresses
  awk -v hub="${FRONT_IP[$HUB]}" -v ecr="${FRONT_IP[$ECR]}" -v fhub="$FAST_HUB_IP" -v fecr="$FAST_ECR_IP" \
    '$1 == hub { $1 = fhub } $1 == ecr { $1 = fecr } { print }' /etc/hosts >"$WORK/fast-hosts"
  local i
  for ((i = 0; i < 100; i++)); do
    if curl -s -o /dev/null --resolve "$HUB:443:$FAST_HUB_IP" "https://$HUB/v2/" \
      && curl -s -o /dev/null --resolve "$ECR:443:$FAST_ECR_IP" "https://$ECR/v2/"; then
      return
    fi
    sleep 0.1
  done
  say "fast-path: did not come up; see $WORK/ecr-direct.log, $WORK/socat-*.log"
  exit 1
}

fast_path_on() {
  mount --bind "$WORK/fast-hosts" /etc/hosts
  FAST_HOSTS_MOUNTED=1
  [[ $(getent hosts "$ECR" | awk '{ print $1; exit }') == "$FAST_ECR_IP" ]] \
    || { say "fast-path: the fast hosts file is not in effect"; exit 1; }
  sleep "$FAST_PATH_SETTLE"
}

fast_path_off() {
  if ((FAST_HOSTS_MOUNTED)); then
    umount /etc/hosts
    FAST_HOSTS_MOUNTED=0
    sleep "$FAST_PATH_SETTLE" # as above: Go clients must see the fronts again
  fi
}

fast_path_stop() { # on any exit: the bed's own hosts file back, our servers gone
  local pid
  if ((FAST_HOSTS_MOUNTED)); then umount /etc/hosts && FAST_HOSTS_MOUNTED=0; fi
  for pid in "${FAST_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${FAST_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  FAST_PIDS=()
}
trap fast_path_stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
