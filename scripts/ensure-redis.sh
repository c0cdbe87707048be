#!/usr/bin/env bash
# Make sure a Redis answers on 127.0.0.1:${REDIS_PORT:-6379}; start Debian's redis-server if not.
set -euo pipefail
port="${REDIS_PORT:-6379}"

answers() {
    exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null || return 1
    printf 'PING\r\n' >&3
    local reply=""
    read -r -t 2 reply <&3 || true
    exec 3>&-
    [[ "$reply" == +PONG* ]]
}

if answers; then exit 0; fi

if ! command -v redis-server >/dev/null; then
    echo "Redis is not running and redis-server is not installed; installing Debian's redis-server" >&2
    if [[ $(id -u) -eq 0 ]]; then apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
    else sudo apt-get update -qq && sudo apt-get install -y -qq redis-server >/dev/null; fi
fi

data_dir="${XDG_STATE_HOME:-$HOME/.local/state}/clipq/redis"
mkdir -p "$data_dir"
echo "starting redis-server on 127.0.0.1:$port (data in $data_dir)" >&2
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$data_dir" \
    --appendonly yes --logfile "$data_dir/redis.log"
for _ in $(seq 50); do answers && exit 0; sleep 0.1; done
echo "redis-server did not answer on port $port; see $data_dir/redis.log" >&2
exit 1
