#!/usr/bin/env bash
# Starts Debian's PostgreSQL for the test suite (installed by
# `scripts/setup.sh --tests`) and prints a URL for a role that may create
# databases; each test creates and drops its own database. Idempotent.
set -euo pipefail
# The URL is the only thing on stdout (callers capture it): everything the
# cluster tools say ("Removed stale pid file." after an unclean stop, for
# one) goes to stderr. The server must not inherit the saved stdout either,
# or the caller's $(...) would wait for it to exit.
exec 3>&1 1>&2
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@" 3>&-; else sudo "$@" 3>&-; fi; }
as_postgres() { as_root runuser -u postgres -- "$@"; }

version=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main"' | grep -q .; then
  as_root pg_createcluster "$version" main >/dev/null
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" && $4=="online"' | grep -q .; then
  as_root pg_ctlcluster "$version" main start
fi
port=$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $3}')
as_postgres psql -qAt -p "$port" -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'streamgate_test') THEN
    CREATE ROLE streamgate_test LOGIN CREATEDB PASSWORD 'streamgate_test';
  END IF; END \$\$;" >/dev/null
echo "postgres://streamgate_test:streamgate_test@127.0.0.1:$port/postgres" >&3
