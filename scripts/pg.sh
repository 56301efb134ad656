# Sourced: pg_start DIR PORT starts a throwaway PostgreSQL cluster (Debian's postgresql 15) on a loopback
# port with trust authentication, and exports APP_TEST_POSTGRES_URL for the tests; pg_stop stops it.
# PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user.

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && { echo "$d"; return; }; done
  echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; return 1
}

pg_as() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
  local dir="$1" port="$2" bin
  bin=$(pg_bin) || return 1
  rm -rf "$dir"; mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
  pg_as "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log"; return 1; }
  # Throwaway data: no fsync, small; a socket dir inside the cluster's folder.
  pg_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/data -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null || { cat "$dir/server.log"; return 1; }
  PG_DIR="$dir"
  export APP_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

pg_stop() {
  [ -n "${PG_DIR:-}" ] || return 0
  pg_as "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  PG_DIR=""
}
