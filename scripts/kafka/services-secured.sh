# Sourced by scripts/services.sh: the services that run Kafka and Redis as production runs them.
#
# * a secured broker (one combined node): SASL_SSL on 127.0.0.1:29092 (SCRAM-SHA-512 users made
#   when its storage is formatted, and OAUTHBEARER), mutual TLS on :29093, PLAINTEXT on :29095
#   (User:ANONYMOUS, no ACL unless granted), its controller on :29094 (TLS, client certificate);
#   the KRaft StandardAuthorizer with allow.everyone.if.no.acl.found=false and the super user
#   admin for set-up;
# * a three-node KRaft cluster (combined nodes, PLAINTEXT) on 127.0.0.1:29192-29194, controllers
#   on :29292-29294, replication factor 3 and min.insync.replicas=2 by default;
# * a Redis with TLS only on 127.0.0.1:6390, a password for the default user and the ACL users
#   sink and checker of the README.
#
# Certificates and passwords come from scripts/kafka/pki.py, made once into $DIR/pki. For each
# role of the secured broker, $DIR/kafka-secured/env/<role>.env holds the JWT_REVOCATION_*
# settings a client needs (SCRAM: admin, publisher, sidecar, topic-admin, nobody; mutual TLS:
# publisher-mtls, sidecar-mtls): `set -a; . that file` and jwt-revocation reaches the broker.
#
# Each JVM runs with a small heap (-Xmx256m): about 200-300 MiB of RSS each.

PKI_DIR=$DIR/pki
SECURED_DIR=$DIR/kafka-secured
SECURED_PID=$SECURED_DIR/kafka.pid
SECURED_SASL_PORT=29092
SECURED_MTLS_PORT=29093
SECURED_CONTROLLER_PORT=29094
SECURED_PLAINTEXT_PORT=29095
SECURED_CLUSTER_ID=jwtRevocationSecure001
SCRAM_USERS="admin publisher sidecar topic-admin nobody"
CLUSTER_DIR=$DIR/kafka-cluster
CLUSTER_NODES="1 2 3"
CLUSTER_ID=jwtRevocationCluster01
CLUSTER_BASE_PORT=29191 # node i listens on 29191+i, its controller on 29291+i
REDIS_TLS_PORT=6390
REDIS_TLS_DIR=$DIR/redis-tls
KAFKA_TEST_HEAP="-Xms64m -Xmx256m"

pki_make() {
  local python=$ROOT/.venv/bin/python
  [ -x "$python" ] || python=python3
  if ! "$python" -c 'import cryptography' 2>/dev/null; then
    log "the certificates need Python's cryptography: run 'make install' first"
    return 1
  fi
  "$python" "$ROOT/scripts/kafka/pki.py" "$PKI_DIR"
}

secret() { cat "$PKI_DIR/$1.password"; }

pid_running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# launch_kafka PROPS LOGS PIDFILE: one broker JVM in the background.
launch_kafka() {
  mkdir -p "$2"
  # shellcheck disable=SC2086 # the heap flags are two words
  nohup java $KAFKA_TEST_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dkafka.logs.dir="$2" -Dlog4j.configuration="file:$ROOT/scripts/kafka/log4j.properties" \
    -cp "$JARS/*" kafka.Kafka "$1" >"$2/stdout.log" 2>&1 &
  echo $! >"$3"
}

# stop_pids SECONDS PIDFILE...: SIGTERM all at once (a cluster's controlled shutdown needs its
# quorum: stopped one by one, the last node would wait forever), SIGKILL what is left after
# SECONDS.
stop_pids() {
  local seconds=$1 file pids=()
  shift
  for file in "$@"; do
    if pid_running "$file"; then
      kill -CONT "$(cat "$file")" 2>/dev/null || true
      kill "$(cat "$file")" 2>/dev/null || true
      pids+=("$(cat "$file")")
    fi
  done
  local deadline=$((SECONDS + seconds)) pid
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  done
  for file in "$@"; do rm -f "$file"; done
}

render() { # template out key=value...: the template with every @key@ replaced
  local template=$1 out=$2 args=()
  shift 2
  local pair
  for pair in "$@"; do args+=(-e "s|@${pair%%=*}@|${pair#*=}|g"); done
  (umask 077 && sed "${args[@]}" "$template" >"$out")
}

# -- the secured broker ----------------------------------------------------------------------

secured_start() { # under kafka-secured.lock (services.sh secured-start)
  install_kafka
  pki_make
  if pid_running "$SECURED_PID" && port_open $SECURED_SASL_PORT; then
    log "secured kafka already running (pid $(cat "$SECURED_PID"))"
    return
  fi
  mkdir -p "$SECURED_DIR/data" "$SECURED_DIR/logs"
  local props=$SECURED_DIR/server.properties
  render "$ROOT/scripts/kafka/secured.properties" "$props" PKI="$PKI_DIR" DATA="$SECURED_DIR/data" \
    PORT_SASL_SSL=$SECURED_SASL_PORT PORT_MTLS=$SECURED_MTLS_PORT \
    PORT_CONTROLLER=$SECURED_CONTROLLER_PORT PORT_PLAINTEXT=$SECURED_PLAINTEXT_PORT
  if [ ! -f "$SECURED_DIR/data/meta.properties" ]; then
    local scram=() user
    for user in $SCRAM_USERS; do
      scram+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$(secret "$user")]")
    done
    java -cp "$JARS/*" kafka.tools.StorageTool format -t "$SECURED_CLUSTER_ID" -c "$props" \
      "${scram[@]}" >"$SECURED_DIR/logs/format.log" 2>&1 \
      || { cat "$SECURED_DIR/logs/format.log" >&2; return 1; }
  fi
  if ! pid_running "$SECURED_PID"; then
    log "starting the secured kafka on 127.0.0.1:$SECURED_SASL_PORT (SASL_SSL), :$SECURED_MTLS_PORT (mTLS)"
    launch_kafka "$props" "$SECURED_DIR/logs" "$SECURED_PID"
  fi
  if ! wait_port $SECURED_SASL_PORT 120 "secured kafka"; then
    tail -n 30 "$SECURED_DIR/logs/server.log" "$SECURED_DIR/logs/stdout.log" >&2 || true
    return 1
  fi
  secured_env
  log "secured kafka ready (settings in $SECURED_DIR/env/)"
}

secured_env() {
  local env=$SECURED_DIR/env user
  mkdir -p "$env"
  for user in $SCRAM_USERS; do
    (umask 077 && cat >"$env/$user.env" <<EOF
JWT_REVOCATION_BOOTSTRAP_SERVERS=127.0.0.1:$SECURED_SASL_PORT
JWT_REVOCATION_KAFKA_SECURITY_PROTOCOL=SASL_SSL
JWT_REVOCATION_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
JWT_REVOCATION_KAFKA_SASL_USERNAME=$user
JWT_REVOCATION_KAFKA_SASL_PASSWORD=$(secret "$user")
JWT_REVOCATION_KAFKA_SSL_CAFILE=$PKI_DIR/ca.pem
EOF
    )
  done
  for user in publisher sidecar; do
    (umask 077 && cat >"$env/$user-mtls.env" <<EOF
JWT_REVOCATION_BOOTSTRAP_SERVERS=127.0.0.1:$SECURED_MTLS_PORT
JWT_REVOCATION_KAFKA_SECURITY_PROTOCOL=SSL
JWT_REVOCATION_KAFKA_SSL_CAFILE=$PKI_DIR/ca.pem
JWT_REVOCATION_KAFKA_SSL_CERTFILE=$PKI_DIR/$user.crt
JWT_REVOCATION_KAFKA_SSL_KEYFILE=$PKI_DIR/$user.key
EOF
    )
  done
}

secured_stop() {
  if pid_running "$SECURED_PID"; then log "stopping the secured kafka"; fi
  stop_pids 30 "$SECURED_PID"
}

# -- the three-node cluster ------------------------------------------------------------------

cluster_pid() { echo "$CLUSTER_DIR/node$1/kafka.pid"; }

cluster_node_start() { # node
  local node=$1 home=$CLUSTER_DIR/node$1 voters="" i
  for i in $CLUSTER_NODES; do voters+="${voters:+,}$i@127.0.0.1:$((CLUSTER_BASE_PORT + 100 + i))"; done
  mkdir -p "$home/data" "$home/logs"
  render "$ROOT/scripts/kafka/cluster.properties" "$home/server.properties" NODE="$node" \
    PORT=$((CLUSTER_BASE_PORT + node)) CONTROLLER_PORT=$((CLUSTER_BASE_PORT + 100 + node)) \
    VOTERS="$voters" DATA="$home/data"
  if [ ! -f "$home/data/meta.properties" ]; then
    java -cp "$JARS/*" kafka.tools.StorageTool format -t "$CLUSTER_ID" -c "$home/server.properties" \
      >"$home/logs/format.log" 2>&1 || { cat "$home/logs/format.log" >&2; return 1; }
  fi
  if pid_running "$(cluster_pid "$node")"; then
    kill -CONT "$(cat "$(cluster_pid "$node")")" 2>/dev/null || true
    return
  fi
  launch_kafka "$home/server.properties" "$home/logs" "$(cluster_pid "$node")"
}

cluster_start() { # under kafka-cluster.lock (services.sh cluster-start)
  install_kafka
  local node
  for node in $CLUSTER_NODES; do cluster_node_start "$node"; done
  for node in $CLUSTER_NODES; do
    if ! wait_port $((CLUSTER_BASE_PORT + node)) 120 "cluster node $node"; then
      tail -n 30 "$CLUSTER_DIR/node$node/logs/server.log" >&2 || true
      return 1
    fi
  done
  log "kafka cluster ready on 127.0.0.1:$((CLUSTER_BASE_PORT + 1))-$((CLUSTER_BASE_PORT + 3))"
}

cluster_kill() { # node: SIGKILL, a crash
  local file
  file=$(cluster_pid "$1")
  if pid_running "$file"; then
    local pid
    pid=$(cat "$file")
    kill -9 "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  fi
  rm -f "$file"
}

cluster_stop() {
  local files=() node
  for node in $CLUSTER_NODES; do files+=("$(cluster_pid "$node")"); done
  if pid_running "${files[0]}" || pid_running "${files[1]}" || pid_running "${files[2]}"; then
    log "stopping the kafka cluster"
  fi
  stop_pids 30 "${files[@]}"
}

# -- Redis with TLS and passwords ------------------------------------------------------------

redis_tls_start() {
  install_redis
  pki_make
  if port_open $REDIS_TLS_PORT; then
    log "tls redis already running"
    return
  fi
  mkdir -p "$REDIS_TLS_DIR"
  (umask 077 && cat >"$REDIS_TLS_DIR/redis.conf" <<EOF
bind 127.0.0.1
port 0
tls-port $REDIS_TLS_PORT
tls-cert-file $PKI_DIR/redis.crt
tls-key-file $PKI_DIR/redis.key
tls-ca-cert-file $PKI_DIR/ca.pem
tls-auth-clients no
daemonize yes
pidfile $REDIS_TLS_DIR/redis.pid
logfile $REDIS_TLS_DIR/redis.log
dir $REDIS_TLS_DIR
save ""
appendonly no
requirepass $(secret redis)
user sink on >$(secret redis-sink) ~jwt-revocation:* +@read +@write +@transaction +@scripting +ping
user checker on >$(secret redis-checker) ~jwt-revocation:* +@read +evalsha +eval +script|load +ping
EOF
  )
  log "starting tls redis on 127.0.0.1:$REDIS_TLS_PORT"
  redis-server "$REDIS_TLS_DIR/redis.conf"
  wait_port $REDIS_TLS_PORT 20 "tls redis"
}

redis_tls_stop() {
  if pid_running "$REDIS_TLS_DIR/redis.pid"; then
    log "stopping tls redis"
    kill "$(cat "$REDIS_TLS_DIR/redis.pid")"
  fi
  rm -f "$REDIS_TLS_DIR/redis.pid"
}

secured_status() {
  local rc=0
  if port_open $SECURED_SASL_PORT; then echo "secured kafka: running on 127.0.0.1:$SECURED_SASL_PORT"; else echo "secured kafka: stopped"; rc=1; fi
  local node
  for node in $CLUSTER_NODES; do
    if port_open $((CLUSTER_BASE_PORT + node)); then echo "kafka cluster node $node: running on 127.0.0.1:$((CLUSTER_BASE_PORT + node))"; else echo "kafka cluster node $node: stopped"; rc=1; fi
  done
  if port_open $REDIS_TLS_PORT; then echo "tls redis: running on 127.0.0.1:$REDIS_TLS_PORT"; else echo "tls redis: stopped"; rc=1; fi
  return $rc
}
