# Source this file (bash) to get a throwaway PostgreSQL server for the distributed tests:
#   source .ci/postgres.sh      # exports NCP_HPO_TEST_POSTGRES=postgresql+psycopg://...
# Idempotent: installs PostgreSQL with apt only when no server binaries exist, initialises a
# private cluster once (under $NCP_HPO_PG_DIR, default /tmp/ncp-hpo-pg), starts it only when
# it is not already answering, and creates the test role/database only when missing.
# It listens on 127.0.0.1 only (port $NCP_HPO_PG_PORT, default 55432) and never touches the
# distribution's own cluster. Needs root (apt, runuser) or to be run as a user who owns the
# directory. If NCP_HPO_TEST_POSTGRES is already set, nothing is done.
# It also exports NCP_HPO_TEST_PG_CTL, the pg_ctl command of this cluster (data dir and log
# included, run as the postgres user when root), so that the chaos tests can stop and start
# the same server: `$NCP_HPO_TEST_PG_CTL stop -m fast -w`, `$NCP_HPO_TEST_PG_CTL start -w`.
# The server settings live in the cluster's ncp-hpo.conf, so a plain `start` restores them.

# The server settings, read at every start: ncp_hpo_postgres_conf DIR PORT [RUN-AS...]
ncp_hpo_postgres_conf() {
    local dir="$1" port="$2"
    shift 2
    # fsync off: a throwaway test cluster, speed over durability
    "$@" sh -c "printf '%s\n' \"listen_addresses = '127.0.0.1'\" \"port = $port\" \
\"unix_socket_directories = '$dir'\" 'max_connections = 200' 'fsync = off' \
'synchronous_commit = off' 'full_page_writes = off' > '$dir/data/ncp-hpo.conf'"
    if ! grep -q "ncp-hpo.conf" "$dir/data/postgresql.conf"; then
        "$@" sh -c "echo \"include_if_exists = 'ncp-hpo.conf'\" >> '$dir/data/postgresql.conf'"
    fi
}

ncp_hpo_start_postgres() {
    local port="${NCP_HPO_PG_PORT:-55432}"
    local dir="${NCP_HPO_PG_DIR:-/tmp/ncp-hpo-pg}"
    local db=ncp_hpo_test role=ncp_hpo password=ncp_hpo_test
    local bin as_pg=()

    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
        echo "ci: installing PostgreSQL" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends postgresql >/dev/null
        bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    fi
    if [ "$(id -u)" = 0 ]; then
        as_pg=(runuser -u postgres --)
    fi

    if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
        mkdir -p "$dir"
        [ "$(id -u)" = 0 ] && chown postgres: "$dir"
        if [ ! -f "$dir/data/PG_VERSION" ]; then
            "${as_pg[@]}" "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 \
                --auth-local=trust --auth-host=scram-sha-256 \
                --no-instructions >/dev/null
        fi
        ncp_hpo_postgres_conf "$dir" "$port" "${as_pg[@]}"
        "${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
    elif [ -f "$dir/data/PG_VERSION" ]; then
        # already running (maybe started by an older version of this script): make sure a
        # later stop/start (the chaos tests) brings it back with the same settings
        ncp_hpo_postgres_conf "$dir" "$port" "${as_pg[@]}"
    fi
    if [ -f "$dir/data/PG_VERSION" ]; then
        export NCP_HPO_TEST_PG_CTL="${as_pg[*]} $bin/pg_ctl -D $dir/data -l $dir/server.log -t 60"
    fi

    local psql=("$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
    if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$role'")" != 1 ]; then
        "${psql[@]}" -c "CREATE ROLE $role LOGIN PASSWORD '$password'" >/dev/null
    fi
    if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
        "${psql[@]}" -c "CREATE DATABASE $db OWNER $role" >/dev/null
    fi
    export NCP_HPO_TEST_POSTGRES="postgresql+psycopg://$role:$password@127.0.0.1:$port/$db"
    echo "ci: PostgreSQL ready at postgresql+psycopg://$role:***@127.0.0.1:$port/$db" >&2
}

if [ -z "${NCP_HPO_TEST_POSTGRES:-}" ]; then
    ncp_hpo_start_postgres
fi
