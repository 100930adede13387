#!/usr/bin/env bash
# Run a command with private PostgreSQL and MariaDB servers on free loopback ports, their
# data in a temporary directory, exported to the command as CALLSYNC_TEST_POSTGRES_URL and
# CALLSYNC_TEST_MYSQL_URL; both stop, and the directory goes, when the command ends,
# however it ends. Needs Debian's `postgresql` and `mariadb-server` (`.ci/run` installs
# them); a server that is not installed is said so, and the tests that need it fail
# naming this script.
set -euo pipefail
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
dir="$(mktemp -d -t callsync-db.XXXXXX)"
chmod 755 "$dir"
pg_ctl=""
my_pid=""
stop() {
  if [ -n "$pg_ctl" ]; then "${as_pg[@]}" "$pg_ctl" -D "$dir/pg" -m immediate stop >/dev/null 2>&1 || true; fi
  if [ -n "$my_pid" ]; then kill "$my_pid" 2>/dev/null || true; wait "$my_pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap stop EXIT

# PostgreSQL refuses to run as root: as root, its own `postgres` user runs it.
as_pg=()
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); fi
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
if [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ]; then
  mkdir -p "$dir/pg"
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir/pg"; fi
  pg_port="$(free_port)"
  "${as_pg[@]}" "$pg_bin/initdb" -D "$dir/pg" -U callsync --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/pg-init.log" 2>&1 \
    || { cat "$dir/pg-init.log" >&2; echo "PostgreSQL's initdb failed" >&2; exit 1; }
  pg_ctl="$pg_bin/pg_ctl"
  "${as_pg[@]}" "$pg_ctl" -D "$dir/pg" -l "$dir/pg/server.log" -w -t 60 \
    -o "-p $pg_port -k $dir/pg -c listen_addresses=127.0.0.1 -c fsync=off -c shared_preload_libraries=pg_stat_statements" start >/dev/null \
    || { cat "$dir/pg/server.log" >&2; echo "PostgreSQL did not start" >&2; exit 1; }
  export CALLSYNC_TEST_POSTGRES_URL="postgres://callsync@127.0.0.1:$pg_port/postgres?sslmode=disable"
  # The tests count the statements a night took (rows are batched many to one).
  "$pg_bin/psql" -q "${CALLSYNC_TEST_POSTGRES_URL%%\?*}" -c "CREATE EXTENSION pg_stat_statements" >/dev/null
else
  echo "with_databases: PostgreSQL is not installed (apt-get install postgresql); its tests will fail" >&2
fi

if command -v mariadb-install-db >/dev/null && command -v mariadbd >/dev/null; then
  my_port="$(free_port)"
  mkdir -p "$dir/my"
  mariadb-install-db --no-defaults --datadir="$dir/my" --user="$(id -un)" \
    --auth-root-authentication-method=normal --skip-test-db >"$dir/my-init.log" 2>&1 \
    || { cat "$dir/my-init.log" >&2; echo "MariaDB's install-db failed" >&2; exit 1; }
  mariadbd --no-defaults --datadir="$dir/my" --user="$(id -un)" --port="$my_port" \
    --bind-address=127.0.0.1 --socket="$dir/my/mysqld.sock" --skip-name-resolve \
    --innodb-flush-log-at-trx-commit=0 --log-error="$dir/my/server.log" &
  my_pid=$!
  for _ in $(seq 1 300); do
    if mariadb --no-defaults --socket="$dir/my/mysqld.sock" -u root -e "SELECT 1" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$my_pid" 2>/dev/null; then cat "$dir/my/server.log" >&2; echo "MariaDB did not start" >&2; exit 1; fi
    sleep 0.1
  done
  mariadb --no-defaults --socket="$dir/my/mysqld.sock" -u root -e \
    "CREATE DATABASE callsync; CREATE USER 'callsync'@'%'; GRANT ALL ON *.* TO 'callsync'@'%' WITH GRANT OPTION;"
  export CALLSYNC_TEST_MYSQL_URL="mysql://callsync@127.0.0.1:$my_port/callsync?ssl-mode=disabled"
else
  echo "with_databases: MariaDB is not installed (apt-get install mariadb-server); its tests will fail" >&2
fi

"$@"
