# lib_pg.sh: a throwaway PostgreSQL 15 for a test, sourced after lib.sh. initdb'd in the
# test's temporary directory, run as an unprivileged user (nobody, when the test runs as
# root), listening on 127.0.0.1 on a free port (lib.sh's free_port) with SCRAM password
# authentication: the password in a 0600 passfile (PGPASSFILE), never on a command line or in
# a URL. --locale=C: text sorts by bytes, as SQLite's BINARY collation does (src/registry/db.h,
# "Known gaps"). Stopped at the test's exit.

PG_BIN=/usr/lib/postgresql/15/bin

# pg_require: skips the test when the server binaries or psql are not installed
# (scripts/bootstrap installs postgresql-15).
pg_require() {
	local b
	for b in initdb pg_ctl postgres; do
		[ -x "$PG_BIN/$b" ] || skip "PostgreSQL 15 server binaries not installed ($PG_BIN/$b)"
	done
	command -v psql >/dev/null || skip "psql not installed"
}

# pg_start: starts the cluster; sets PG_PORT and exports PGPASSFILE (user moat). Fails the
# test unless the server refuses a connection without the password.
pg_start() {
	local pg=$T/pg pw
	mkdir -m 0700 "$pg"
	PG_AS=()
	if [ "$(id -u)" = 0 ]; then
		chown nobody: "$pg"
		PG_AS=(runuser -u nobody --)
	fi
	pw=$(openssl rand -hex 24)
	(umask 077 && printf '%s\n' "$pw" >"$pg/pwfile")
	[ "${#PG_AS[@]}" -eq 0 ] || chown nobody: "$pg/pwfile"
	"${PG_AS[@]}" "$PG_BIN/initdb" -D "$pg/data" -U moat --auth=scram-sha-256 \
		--pwfile="$pg/pwfile" -E UTF8 --locale=C --no-sync >"$pg/initdb.log" 2>&1 ||
		fail "initdb: $(tail -3 "$pg/initdb.log")"
	rm -f "$pg/pwfile"
	PG_PORT=$(free_port)
	# loopback only; the socket in the test's directory; fsync off: a throwaway cluster
	# the stop first: a start that times out may leave the server running
	on_exit "${PG_AS[*]} $PG_BIN/pg_ctl -D $pg/data -m fast -t 20 stop"
	"${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$pg/data" -l "$pg/server.log" -w -t "$(deadline 30)" \
		-o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$pg -c fsync=off" \
		start >/dev/null || fail "PostgreSQL did not start: $(tail -5 "$pg/server.log")"
	export PGPASSFILE=$pg/pgpass
	(umask 077 && printf '127.0.0.1:%s:*:moat:%s\n' "$PG_PORT" "$pw" >"$PGPASSFILE")
	# the password is required: without the passfile the server refuses the connection
	if PGPASSFILE=/dev/null psql -w -h 127.0.0.1 -p "$PG_PORT" -U moat -d postgres \
		-c 'SELECT 1' >/dev/null 2>&1; then
		fail "the test cluster accepted a connection without its password"
	fi
}

# pg_createdb NAME: an empty database NAME.
pg_createdb() {
	psql -w -q -h 127.0.0.1 -p "$PG_PORT" -U moat -d postgres -c "CREATE DATABASE $1" ||
		fail "CREATE DATABASE $1 failed"
}

# pg_sql DB SQL: runs SQL in DB, prints the rows unaligned (psql -At).
pg_sql() {
	psql -w -At -h 127.0.0.1 -p "$PG_PORT" -U moat -d "$1" -c "$2"
}
