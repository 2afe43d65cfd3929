#!/usr/bin/env bash
# Installs what is missing and runs the two real services the project needs:
# a single-node KRaft Apache Kafka broker on 127.0.0.1:9092, assembled from Maven Central jars,
# and Debian's redis-server on 127.0.0.1:6379.
#
#   scripts/services.sh start         install what is missing, start both (a second call finds them running)
#   scripts/services.sh stop          stop both (Kafka with SIGTERM: a clean shutdown)
#   scripts/services.sh status        say which are running
#   scripts/services.sh kafka-start   start the broker alone
#   scripts/services.sh kafka-kill    SIGKILL the broker (a crash, for fault tests)
#
# State lives under $JWT_REVOCATION_SERVICES_DIR (default: .services/ in the repository).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${JWT_REVOCATION_SERVICES_DIR:-$ROOT/.services}
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml")
JARS=$DIR/kafka-$KAFKA_VERSION/libs
KAFKA_DATA=$DIR/kafka-data
KAFKA_LOGS=$DIR/kafka-logs
KAFKA_PID=$DIR/kafka.pid
REDIS_DIR=$DIR/redis
# A fixed cluster id: the data directory is formatted once and reused across restarts.
CLUSTER_ID=jwtRevocationLocal0001
KAFKA_PORT=9092
REDIS_PORT=6379

log() { printf 'services: %s\n' "$*" >&2; }

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

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "missing $*; install it (needs root): apt-get install -y $*"
    exit 1
  fi
  log "installing $* with apt-get"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

install_kafka() {
  if [ -f "$JARS/.complete" ]; then return; fi
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
  log "fetching Kafka $KAFKA_VERSION broker jars from Maven Central"
  rm -rf "$JARS"
  mkdir -p "$JARS"
  mvn -B -q -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$JARS"
  touch "$JARS/.complete"
}

install_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
}

kafka_running() { [ -f "$KAFKA_PID" ] && kill -0 "$(cat "$KAFKA_PID")" 2>/dev/null; }

kafka_start() {
  install_kafka
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

status() {
  local rc=0
  if port_open $KAFKA_PORT; then echo "kafka: running on 127.0.0.1:$KAFKA_PORT"; else echo "kafka: stopped"; rc=1; fi
  if port_open $REDIS_PORT; then echo "redis: running on 127.0.0.1:$REDIS_PORT"; else echo "redis: stopped"; rc=1; fi
  return $rc
}

case "${1:-}" in
  start) redis_start; kafka_start ;;
  stop) kafka_stop; redis_stop ;;
  status) status ;;
  kafka-start) kafka_start ;;
  kafka-stop) kafka_stop ;;
  kafka-kill) kafka_kill ;;
  install) install_redis; install_kafka ;;
  *) echo "usage: $0 start|stop|status|install|kafka-start|kafka-stop|kafka-kill" >&2; exit 2 ;;
esac
