#!/usr/bin/env bash
# Installs what is missing and runs the real services the project needs:
# a single-node KRaft Apache Kafka broker on 127.0.0.1:9092, assembled from Maven Central jars,
# Debian's redis-server on 127.0.0.1:6379, Debian's PostgreSQL on 127.0.0.1:55432 (the
# outbox; a port of its own so that it never meets a system cluster on 5432), and Keycloak on
# 127.0.0.1:8180 (the identity provider of the back-channel logout tests and the demo).
#
#   scripts/services.sh start            install what is missing, start every service (a second call finds them running)
#   scripts/services.sh start-core       only the plain broker and Redis: what `make demo` needs
#   scripts/services.sh stop             stop all three (Kafka with SIGTERM: a clean shutdown)
#   scripts/services.sh status           say which are running
#   scripts/services.sh kafka-start      start the broker alone
#   scripts/services.sh kafka-kill       SIGKILL the broker (a crash, for fault tests)
#   scripts/services.sh kafka-pause      SIGSTOP the broker (a broker that answers nothing, for
#                                        fault tests); kafka-resume or kafka-start wakes it
#   scripts/services.sh postgres-start   start PostgreSQL alone (database jwt_revocation, user postgres)
#   scripts/services.sh postgres-stop    stop it (fast shutdown)
#   scripts/services.sh keycloak-start   start Keycloak alone (admin/admin, dev mode, an empty
#                                        master realm every start)
#   scripts/services.sh keycloak-stop    stop it
#   scripts/services.sh secured-start    the secured broker alone: SASL_SSL (SCRAM-SHA-512,
#                                        OAUTHBEARER) on :29092, mutual TLS on :29093, ACLs
#   scripts/services.sh cluster-start    the three-node KRaft cluster alone (:29192-29194)
#   scripts/services.sh cluster-kill N   SIGKILL node N of the cluster; cluster-node-start N
#                                        starts it again
#   scripts/services.sh redis-tls-start  Redis with TLS and passwords alone (:6390)
#   (each has its -stop; scripts/kafka/services-secured.sh says what they are)
#
# `start` and `install` also install the tools the tests run themselves, each on a port of their
# own: Debian's nginx and Caddy 2.6 (forward-auth tests, started per test), wrk (the HTTP
# benchmark) and promtool (from the prometheus package: checks and unit-tests the alerting rules
# in deploy/prometheus/). Debian starts a freshly installed nginx, Caddy or Prometheus as a
# system service; the script stops the ones it installed.
#
# State lives under $JWT_REVOCATION_SERVICES_DIR (default: .services/ in the repository).
# What depends only on a version, the Kafka jars and Keycloak's built template, is made once
# per machine under $JWT_REVOCATION_CACHE_DIR (default: ~/.cache/jwt-revocation) and shared by
# every checkout. `start` starts the services side by side once the jars, Keycloak's template
# and the certificates are there. A fresh clone's `start` (empty services directory, on a
# machine whose load average other test runs kept near 40) took 118 s, 49 s of it fetching the
# jars and building Keycloak again; with the cache and the side-by-side start, 64 s.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${JWT_REVOCATION_SERVICES_DIR:-$ROOT/.services}
CACHE=${JWT_REVOCATION_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/jwt-revocation}
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml")
JARS=$CACHE/kafka-$KAFKA_VERSION/libs
KAFKA_DATA=$DIR/kafka-data
KAFKA_LOGS=$DIR/kafka-logs
KAFKA_PID=$DIR/kafka.pid
REDIS_DIR=$DIR/redis
# A fixed cluster id: the data directory is formatted once and reused across restarts.
CLUSTER_ID=jwtRevocationLocal0001
KAFKA_PORT=9092
REDIS_PORT=6379
PG_PORT=55432
PG_DIR=$DIR/postgres
PG_DATABASE=jwt_revocation
# Password authentication on 127.0.0.1 only (scram-sha-256), so that the URLs the tests use
# carry a real password: postgresql+psycopg://postgres:jwt-revocation@127.0.0.1:55432/jwt_revocation
PG_PASSWORD=jwt-revocation

# Keycloak's distribution zip from Maven Central, run on Java 25 (26.5.6 needs no extra flags
# there). The zip is unpacked and started once into a template home (about 23 s: a build step
# and the H2 schema), in the machine's cache; every start runs a fresh copy of that template
# (ready in about 7 s), so each start has an empty master realm with the admin user and nothing
# else.
KEYCLOAK_VERSION=26.5.6
KEYCLOAK_PORT=8180
KEYCLOAK_TEMPLATE=$CACHE/keycloak-$KEYCLOAK_VERSION-template
KEYCLOAK_HOME=$DIR/keycloak-run
KEYCLOAK_PID=$DIR/keycloak.pid
KEYCLOAK_LOG=$DIR/keycloak.log
KEYCLOAK_ADMIN=admin
# The small heap measured enough for the tests' realms (RSS about 0.5 GB); kc.sh's default
# is -Xms64m -Xmx512m.
KEYCLOAK_HEAP="-Xms128m -Xmx512m"

log() { printf 'services: %s\n' "$*" >&2; }

# locked LOCK SECONDS ACTION: run `services.sh ACTION` holding $DIR/LOCK (two callers at once,
# `make test` in two shells, would unpack or start the same service twice). flock -o closes the
# lock's descriptor before the action runs, so no process the action starts (a broker, Keycloak,
# Redis) holds it: the lock ends with the action, never with a service that outlives it. (A
# descriptor taken with `exec 9>` in this shell was inherited by every service started after it,
# and the next start waited for that service to stop.)
locked() {
  mkdir -p "$DIR"
  local rc=0
  flock -o -E 75 -w "$2" "$DIR/$1" "$ROOT/scripts/services.sh" "$3" || rc=$?
  if [ "$rc" = 75 ]; then
    log "$DIR/$1 was held for $2 s by another start; see which process holds it: fuser $DIR/$1"
  fi
  return "$rc"
}

# The secured broker, the three-node cluster and the TLS Redis (secured-*, cluster-*, redis-tls-*).
# shellcheck source=kafka/services-secured.sh
. "$ROOT/scripts/kafka/services-secured.sh"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port seconds what
  local deadline=$((SECONDS + $2))
  until port_open "$1"; do
    if ((SECONDS >= deadline)); then
      log "$3 did not open port $1 within $2 s"
      return 1
    fi
    sleep 0.2
  done
}

apt_install() { # [--no-install-recommends] package...
  local options=()
  if [ "${1:-}" = --no-install-recommends ]; then options+=("$1"); shift; fi
  if [ "$(id -u)" != 0 ]; then
    log "missing $*; install it (needs root): apt-get install -y ${options[*]} $*"
    exit 1
  fi
  log "installing $* with apt-get"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${options[@]}" "$@" >/dev/null
}

# publish BUILT TARGET: move the finished folder BUILT to TARGET in the cache in one rename,
# so that a checkout never sees a half-made one; if another start got there first, its copy stays.
publish() {
  mkdir -p "$(dirname "$2")"
  if [ -f "$2/.complete" ] || ! { rm -rf "$2" && mv -T "$1" "$2"; }; then rm -rf "$1"; fi
}

install_kafka() {
  if [ -f "$JARS/.complete" ]; then return; fi
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
  log "fetching Kafka $KAFKA_VERSION broker jars from Maven Central into $CACHE"
  mkdir -p "$CACHE"
  local built
  built=$(mktemp -d "$CACHE/.kafka-libs.XXXXXX")
  mvn -B -q -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$built"
  touch "$built/.complete"
  publish "$built" "$JARS"
}

install_tools() {
  local missing=() package
  command -v nginx >/dev/null || missing+=(nginx-light)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v caddy >/dev/null || missing+=(caddy)
  # promtool comes with the Prometheus server; its recommended node exporter is not needed.
  command -v promtool >/dev/null || missing+=(prometheus)
  if [ ${#missing[@]} -eq 0 ]; then return; fi
  apt_install --no-install-recommends "${missing[@]}"
  # The tests start nginx and Caddy with their own configuration: never leave the system
  # services the packages started running (Caddy on :80, Prometheus on :9090).
  for package in "${missing[@]}"; do
    case $package in
      nginx-light) if [ -f /run/nginx.pid ]; then nginx -s stop 2>/dev/null || true; fi ;;
      caddy | prometheus)
        if [ -d /run/systemd/system ]; then systemctl stop "$package.service" 2>/dev/null || true; fi ;;
    esac
  done
}

install_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
}

kafka_running() { [ -f "$KAFKA_PID" ] && kill -0 "$(cat "$KAFKA_PID")" 2>/dev/null; }

kafka_start() {
  install_kafka
  kafka_resume
  if kafka_running && port_open $KAFKA_PORT; then
    log "kafka already running (pid $(cat "$KAFKA_PID"))"
    return
  fi
  if ! kafka_running && port_open $KAFKA_PORT; then
    log "a broker not started by this script already listens on 127.0.0.1:$KAFKA_PORT; using it"
    return
  fi
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
  local props=$DIR/server.properties
  { cat "$ROOT/scripts/kafka/server.properties"; echo "log.dirs=$KAFKA_DATA"; } >"$props"
  if [ ! -f "$KAFKA_DATA/meta.properties" ]; then
    java -cp "$JARS/*" kafka.tools.StorageTool format -t "$CLUSTER_ID" -c "$props" --ignore-formatted \
      >"$KAFKA_LOGS/format.log" 2>&1 || { cat "$KAFKA_LOGS/format.log" >&2; return 1; }
  fi
  if ! kafka_running; then
    log "starting kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT"
    nohup java -Xms128m -Xmx768m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
      -Dkafka.logs.dir="$KAFKA_LOGS" -Dlog4j.configuration="file:$ROOT/scripts/kafka/log4j.properties" \
      -cp "$JARS/*" kafka.Kafka "$props" >"$KAFKA_LOGS/stdout.log" 2>&1 &
    echo $! >"$KAFKA_PID"
  fi
  if ! wait_port $KAFKA_PORT 90 kafka; then
    tail -n 30 "$KAFKA_LOGS/server.log" "$KAFKA_LOGS/stdout.log" >&2 || true
    return 1
  fi
  log "kafka ready"
}

kafka_stop() {
  kafka_resume
  if kafka_running; then
    local pid
    pid=$(cat "$KAFKA_PID")
    log "stopping kafka (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$KAFKA_PID"
}

kafka_kill() {
  if kafka_running; then
    kill -9 "$(cat "$KAFKA_PID")"
    while kafka_running; do sleep 0.05; done
  fi
  rm -f "$KAFKA_PID"
}

kafka_pause() {
  if kafka_running; then kill -STOP "$(cat "$KAFKA_PID")"; fi
}

kafka_resume() {
  if kafka_running; then kill -CONT "$(cat "$KAFKA_PID")"; fi
}

redis_start() {
  install_redis
  if port_open $REDIS_PORT; then
    log "redis already running"
    return
  fi
  mkdir -p "$REDIS_DIR"
  log "starting redis on 127.0.0.1:$REDIS_PORT"
  redis-server --bind 127.0.0.1 --port $REDIS_PORT --daemonize yes --dir "$REDIS_DIR" \
    --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" --save '' --appendonly no
  wait_port $REDIS_PORT 20 redis
}

redis_stop() {
  if [ -f "$REDIS_DIR/redis.pid" ] && kill -0 "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null; then
    log "stopping redis"
    kill "$(cat "$REDIS_DIR/redis.pid")"
  fi
  rm -f "$REDIS_DIR/redis.pid"
}

pg_bin() { # the newest installed server's bin directory, or nothing
  local bins
  bins=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$bins" ] && [ -x "$bins/initdb" ] && echo "$bins"
}

install_postgres() {
  pg_bin >/dev/null || apt_install postgresql
}

# As root, PostgreSQL refuses to run: its commands run as the postgres user (made by Debian's
# package). Its data directory must be reachable by that user; under a folder that is not,
# it lives in /var/tmp instead.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_dir() {
  if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PG_DIR"
    chown postgres:postgres "$PG_DIR"
    if ! runuser -u postgres -- test -w "$PG_DIR"; then
      local fallback
      fallback=/var/tmp/jwt-revocation-postgres-$(printf '%s' "$PG_DIR" | md5sum | cut -c1-12)
      mkdir -p "$fallback"
      chown postgres:postgres "$fallback"
      echo "$fallback"
      return
    fi
  fi
  mkdir -p "$PG_DIR"
  echo "$PG_DIR"
}

postgres_start() {
  install_postgres
  if port_open $PG_PORT; then
    log "postgres already running"
    return
  fi
  local bin dir
  bin=$(pg_bin)
  dir=$(pg_dir)
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    log "initialising a PostgreSQL cluster in $dir/data"
    printf '%s\n' "$PG_PASSWORD" >"$dir/password"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/password"
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/password" \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; return 1; }
    rm -f "$dir/password"
  fi
  log "starting postgres on 127.0.0.1:$PG_PORT"
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $dir -c max_connections=100" start >/dev/null \
    || { tail -n 30 "$dir/postgres.log" >&2; return 1; }
  if [ -z "$(as_pg "$bin/psql" -h "$dir" -p $PG_PORT -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE'")" ]; then
    as_pg "$bin/psql" -q -h "$dir" -p $PG_PORT -U postgres -d postgres -c "CREATE DATABASE $PG_DATABASE"
  fi
  log "postgres ready (database $PG_DATABASE)"
}

postgres_stop() {
  local bin dir
  bin=$(pg_bin) || return 0
  dir=$(pg_dir)
  if [ -f "$dir/data/postmaster.pid" ]; then
    log "stopping postgres"
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
  fi
}

# Java 25 for Keycloak: $KEYCLOAK_JAVA_HOME, else a JDK 25 under /usr/lib/jvm (Temurin lies in
# /usr/lib/jvm/temurin-25-jdk-amd64 on these machines). Debian 12 packages none.
keycloak_java() {
  local home
  for home in ${KEYCLOAK_JAVA_HOME:-} /usr/lib/jvm/temurin-25-jdk* /usr/lib/jvm/*-25-*; do
    if [ -x "$home/bin/java" ]; then echo "$home"; return; fi
  done
  log "Keycloak $KEYCLOAK_VERSION needs Java 25: none under /usr/lib/jvm; set KEYCLOAK_JAVA_HOME"
  return 1
}

keycloak_url() { echo "http://127.0.0.1:$KEYCLOAK_PORT"; }

keycloak_ready() {
  curl -sf -o /dev/null --max-time 2 "$(keycloak_url)/realms/master/.well-known/openid-configuration"
}

keycloak_running() { [ -f "$KEYCLOAK_PID" ] && kill -0 "$(cat "$KEYCLOAK_PID")" 2>/dev/null; }

keycloak_launch() { # home: start kc.sh in the background, its pid in $KEYCLOAK_PID
  local java_home
  java_home=$(keycloak_java)
  log "starting keycloak $KEYCLOAK_VERSION on $(keycloak_url)"
  # On Java 24 and later, JBoss threads' thread-local reset needs java.lang opened; without it
  # the first worker thread that uses it dies (IllegalAccessError in keycloak.log).
  JAVA_HOME=$java_home KC_BOOTSTRAP_ADMIN_USERNAME=$KEYCLOAK_ADMIN KC_BOOTSTRAP_ADMIN_PASSWORD=admin \
    JAVA_OPTS_KC_HEAP=$KEYCLOAK_HEAP JAVA_OPTS_APPEND="--add-opens=java.base/java.lang=ALL-UNNAMED" \
    nohup "$1/bin/kc.sh" start-dev --http-port $KEYCLOAK_PORT \
    --http-host 127.0.0.1 >"$KEYCLOAK_LOG" 2>&1 &
  echo $! >"$KEYCLOAK_PID"
  local deadline=$((SECONDS + 180))
  until keycloak_ready; do
    if ! keycloak_running || ((SECONDS >= deadline)); then
      log "keycloak did not answer on $(keycloak_url) within 180 s"
      tail -n 30 "$KEYCLOAK_LOG" >&2 || true
      keycloak_stop
      return 1
    fi
    sleep 0.3
  done
}

install_keycloak() {
  if [ -f "$KEYCLOAK_TEMPLATE/.complete" ]; then return; fi
  keycloak_java >/dev/null
  command -v mvn >/dev/null || apt_install maven
  command -v unzip >/dev/null || apt_install unzip
  command -v curl >/dev/null || apt_install curl
  log "fetching Keycloak $KEYCLOAK_VERSION from Maven Central"
  mvn -B -q dependency:get -Dartifact=org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip \
    -Dtransitive=false
  local zip built
  zip=${MAVEN_LOCAL_REPOSITORY:-$HOME/.m2/repository}/org/keycloak/keycloak-quarkus-dist/$KEYCLOAK_VERSION/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip
  mkdir -p "$CACHE" "$DIR"
  built=$(mktemp -d "$CACHE/.keycloak.XXXXXX")
  unzip -q "$zip" -d "$built"
  if port_open $KEYCLOAK_PORT; then
    log "127.0.0.1:$KEYCLOAK_PORT is taken: stop that server, then install Keycloak"
    rm -rf "$built"
    return 1
  fi
  log "starting keycloak once to build it and create its database (about 25 s), into $CACHE"
  keycloak_launch "$built/keycloak-$KEYCLOAK_VERSION"
  keycloak_stop
  touch "$built/keycloak-$KEYCLOAK_VERSION/.complete"
  publish "$built/keycloak-$KEYCLOAK_VERSION" "$KEYCLOAK_TEMPLATE"
  rm -rf "$built"
}

keycloak_start() { # under keycloak.lock (the keycloak-start action)
  if keycloak_running && keycloak_ready; then
    log "keycloak already running (pid $(cat "$KEYCLOAK_PID"))"
    return
  fi
  if ! keycloak_running && port_open $KEYCLOAK_PORT; then
    log "a server not started by this script already listens on 127.0.0.1:$KEYCLOAK_PORT; using it"
    return
  fi
  install_keycloak
  keycloak_stop
  rm -rf "$KEYCLOAK_HOME"
  cp -a "$KEYCLOAK_TEMPLATE" "$KEYCLOAK_HOME"
  keycloak_launch "$KEYCLOAK_HOME"
  log "keycloak ready (admin/admin)"
}

keycloak_stop() {
  if keycloak_running; then
    local pid
    pid=$(cat "$KEYCLOAK_PID")
    log "stopping keycloak (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$KEYCLOAK_PID"
}

status() {
  local rc=0
  if port_open $KAFKA_PORT; then echo "kafka: running on 127.0.0.1:$KAFKA_PORT"; else echo "kafka: stopped"; rc=1; fi
  if port_open $REDIS_PORT; then echo "redis: running on 127.0.0.1:$REDIS_PORT"; else echo "redis: stopped"; rc=1; fi
  if port_open $PG_PORT; then echo "postgres: running on 127.0.0.1:$PG_PORT"; else echo "postgres: stopped"; rc=1; fi
  if port_open $KEYCLOAK_PORT; then echo "keycloak: running on 127.0.0.1:$KEYCLOAK_PORT"; else echo "keycloak: stopped"; rc=1; fi
  secured_status || rc=1
  return $rc
}

# side_by_side ACTION...: `services.sh ACTION` for each at once; fails if one of them failed.
side_by_side() {
  local pids=() action pid rc=0
  for action in "$@"; do
    "$ROOT/scripts/services.sh" "$action" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  return $rc
}

case "${1:-}" in
  start)
    # What several services share first (the jars, the certificates), and Keycloak's one-off
    # build unless a Keycloak already answers (alone: beside five starting JVMs it took 120 s
    # of its 180 s limit), then every service at once.
    install_tools; install_kafka; pki_make; redis_start
    port_open $KEYCLOAK_PORT || locked keycloak.lock 600 _keycloak-install
    side_by_side postgres-start kafka-start keycloak-start redis-tls-start secured-start cluster-start ;;
  start-core) redis_start; kafka_start ;;
  stop) kafka_stop; redis_stop; postgres_stop; keycloak_stop; secured_stop; cluster_stop; redis_tls_stop ;;
  status) status ;;
  kafka-start) kafka_start ;;
  kafka-stop) kafka_stop ;;
  kafka-kill) kafka_kill ;;
  kafka-pause) kafka_pause ;;
  kafka-resume) kafka_resume ;;
  postgres-start) postgres_start ;;
  postgres-stop) postgres_stop ;;
  keycloak-start) locked keycloak.lock 600 _keycloak-start ;;
  keycloak-stop) keycloak_stop ;;
  secured-start) locked kafka-secured.lock 600 _secured-start ;;
  secured-stop) secured_stop ;;
  cluster-start) locked kafka-cluster.lock 600 _cluster-start ;;
  cluster-stop) cluster_stop ;;
  cluster-kill) cluster_kill "${2:?cluster-kill NODE (1-3)}" ;;
  cluster-node-start) cluster_node_start "${2:?cluster-node-start NODE (1-3)}" ;;
  redis-tls-start) redis_tls_start ;;
  redis-tls-stop) redis_tls_stop ;;
  install) install_tools; install_redis; install_postgres; install_kafka; locked keycloak.lock 600 _keycloak-install ;;
  # What the actions above run while holding their lock (see locked).
  _keycloak-start) keycloak_start ;;
  _keycloak-install) install_keycloak ;;
  _secured-start) secured_start ;;
  _cluster-start) cluster_start ;;
  *) echo "usage: $0 start|start-core|stop|status|install|kafka-start|kafka-stop|kafka-kill|kafka-pause|kafka-resume|postgres-start|postgres-stop|keycloak-start|keycloak-stop|secured-start|secured-stop|cluster-start|cluster-stop|cluster-kill N|cluster-node-start N|redis-tls-start|redis-tls-stop" >&2; exit 2 ;;
esac
