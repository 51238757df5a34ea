# Apache Kafka 4.x, single node in KRaft mode (combined broker + controller),
# run from Maven-resolved jars on 127.0.0.1. Sourced after common.sh, never
# run directly; defines kafka_up, kafka_down, kafka_status and kafka_tool.
#
# Layout:
#   scripts/stack.d/kafka/       pom.xml (which jars), log4j2 configs, the
#                                server.properties template
#   $STACK_DIR/jars/kafka/       resolved jars; .complete holds the pom's hash
#   $STACK_DIR/kafka/data/       log.dirs (meta.properties holds the cluster id)
#   $STACK_DIR/kafka/logs/       kafka.log (broker stdout), maven.log, format.log
#   $STACK_DIR/kafka/kafka.pid

KAFKA_SPEC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/kafka" && pwd)"
KAFKA_JARS_DIR="$JARS_DIR/kafka"
KAFKA_STATE_DIR="$STACK_DIR/kafka"
KAFKA_DATA_DIR="$KAFKA_STATE_DIR/data"
KAFKA_LOG_DIR="$KAFKA_STATE_DIR/logs"
KAFKA_LOG="$KAFKA_LOG_DIR/kafka.log"
KAFKA_PIDFILE="$KAFKA_STATE_DIR/kafka.pid"
KAFKA_CONFIG="$KAFKA_STATE_DIR/server.properties"

# JVM flags for the short-lived CLI tools: C1 only and the serial GC start
# faster and use less CPU than the defaults, which matters on 2 cores.
KAFKA_TOOL_JVM_OPTS=(-Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto
  "-Dlog4j2.configurationFile=$KAFKA_SPEC_DIR/tools-log4j2.properties")

# _kafka_running: true when the pid file names a live Kafka broker. Checking
# the command line guards against a stale pid file whose pid now belongs to
# another process (say, after a reboot).
_kafka_running() {
  pid_alive "$KAFKA_PIDFILE" &&
    tr '\0' ' ' <"/proc/$(cat "$KAFKA_PIDFILE")/cmdline" 2>/dev/null | grep -q ' kafka\.Kafka '
}

# _kafka_jars: copy the jars named by kafka/pom.xml into $KAFKA_JARS_DIR,
# unless the folder is already complete for this very pom (then no Maven and
# no network at all).
_kafka_jars() {
  local pom="$KAFKA_SPEC_DIR/pom.xml" marker="$KAFKA_JARS_DIR/.complete"
  local want tmp mvnlog="$KAFKA_LOG_DIR/maven.log"
  want=$(sha256sum "$pom" | cut -d' ' -f1)
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ]; then
    return 0
  fi
  need_cmd mvn maven
  log "kafka: resolving jars with Maven into $KAFKA_JARS_DIR"
  # Resolve into a fresh folder and swap it in, so a changed pom never
  # leaves stale jars (say, two kafka-clients versions) on the classpath.
  tmp="$KAFKA_JARS_DIR.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp" "$KAFKA_LOG_DIR"
  if ! mvn -q -B -f "$pom" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$mvnlog" 2>&1; then
    rm -rf "$tmp"
    fail kafka "$mvnlog" "resolving the Kafka jars with Maven failed"
  fi
  rm -rf "$KAFKA_JARS_DIR"
  mv "$tmp" "$KAFKA_JARS_DIR"
  printf '%s\n' "$want" >"$marker"
}

# _kafka_tool_argv NAME ARGS...: set _KAFKA_TOOL_ARGV to the java command
# line of a Kafka CLI tool. NAME is a short name (below) or a main class.
# --bootstrap-server 127.0.0.1:$KAFKA_PORT is added unless ARGS name a
# bootstrap themselves.
_kafka_tool_argv() {
  local name=$1 main arg bootstrap=1
  shift
  case $name in
    topics) main=org.apache.kafka.tools.TopicCommand ;;
    console-producer) main=org.apache.kafka.tools.ConsoleProducer ;;
    console-consumer) main=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
    consumer-groups) main=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
    configs) main=org.apache.kafka.tools.ConfigCommand ;;
    broker-api-versions) main=org.apache.kafka.tools.BrokerApiVersionsCommand ;;
    metadata-quorum) main=org.apache.kafka.tools.MetadataQuorumCommand ;;
    delete-records) main=org.apache.kafka.tools.DeleteRecordsCommand ;;
    transactions) main=org.apache.kafka.tools.TransactionsCommand ;;
    *.*) main=$name ;;
    *)
      log "kafka_tool: unknown tool '$name' (use a short name or a main class)"
      return 2
      ;;
  esac
  for arg in "$@"; do
    case $arg in --bootstrap-server | --bootstrap-server=* | --bootstrap-controller | --bootstrap-controller=*) bootstrap=0 ;; esac
  done
  _KAFKA_TOOL_ARGV=(java "${KAFKA_TOOL_JVM_OPTS[@]}" -cp "$KAFKA_JARS_DIR/*" "$main")
  [ "$bootstrap" = 1 ] && _KAFKA_TOOL_ARGV+=(--bootstrap-server "127.0.0.1:$KAFKA_PORT")
  _KAFKA_TOOL_ARGV+=("$@")
}

# kafka_tool NAME ARGS...: run a Kafka CLI tool against the local broker, e.g.
#   kafka_tool topics --create --topic orders --partitions 6
#   kafka_tool console-consumer --topic orders --from-beginning --max-messages 3
# Names: topics console-producer console-consumer consumer-groups configs
# broker-api-versions metadata-quorum delete-records transactions, or a
# fully qualified main class. Needs the jars (kafka_up resolves them).
kafka_tool() {
  _kafka_tool_argv "$@" || return
  "${_KAFKA_TOOL_ARGV[@]}"
}

# _kafka_ping: true when the broker answers a Kafka ApiVersions request on
# 127.0.0.1:$KAFKA_PORT. Done in plain bash (no JVM: milliseconds instead of
# a second or two) so status checks stay cheap. The KRaft broker opens its
# client listener only once it has caught up with the metadata log and been
# unfenced, so an answer here means it is serving.
_kafka_ping() {
  local reply
  # Request: int32 size 15, api_key 18 (ApiVersions), api_version 0,
  # correlation id 7, client id "stack" (int16 length + bytes), empty body.
  # Response starts: int32 size, int32 correlation id, int16 error code.
  # shellcheck disable=SC2016 # $1 is expanded by the inner bash
  reply=$(timeout 3 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x07\x00\x05stack" >&3
    head -c 10 <&3 | od -An -tx1' _ "$KAFKA_PORT" 2>/dev/null) || return 1
  reply=${reply//[[:space:]]/}
  # Correlation id 7 echoed back and error code 0 (NONE).
  [ "${reply:8:12}" = 000000070000 ]
}

# _kafka_ready: _kafka_ping, then a real metadata round trip through the
# admin client (topics --list), bounded so a wedged broker cannot hang us.
_kafka_ready() {
  _kafka_ping || return 1
  _kafka_tool_argv topics --list || return 1
  timeout 30 "${_KAFKA_TOOL_ARGV[@]}" >/dev/null 2>>"$KAFKA_LOG_DIR/readiness.log"
}

# _kafka_wait: wait (deadline STACK_WAIT_SECS) for the broker to serve;
# give up early when its process dies.
_kafka_wait() {
  local deadline=$((SECONDS + STACK_WAIT_SECS))
  local cause
  until _kafka_ready; do
    if ! pid_alive "$KAFKA_PIDFILE"; then
      # The log's tail is shutdown chatter; the cause is the first ERROR
      # and the exception line after it.
      cause=$(grep -m1 -A1 -E '^\[[^]]*\] (ERROR|FATAL) ' "$KAFKA_LOG" | tr '\n' ' ' || true)
      fail kafka "$KAFKA_LOG" "the broker exited during start-up${cause:+: $cause}"
    fi
    [ "$SECONDS" -ge "$deadline" ] &&
      fail kafka "$KAFKA_LOG" "not ready after ${STACK_WAIT_SECS}s (no answer to a metadata request on 127.0.0.1:$KAFKA_PORT)"
    sleep 0.5
  done
}

# _kafka_write_config: render the server.properties template.
_kafka_write_config() {
  local conf
  conf=$(<"$KAFKA_SPEC_DIR/server.properties.in")
  # Quoted replacements: bash 5.2 would otherwise treat '&' in a path as the
  # matched text.
  conf=${conf//@KAFKA_PORT@/"$KAFKA_PORT"}
  conf=${conf//@KAFKA_CONTROLLER_PORT@/"$KAFKA_CONTROLLER_PORT"}
  conf=${conf//@DATA_DIR@/"$KAFKA_DATA_DIR"}
  printf '%s\n' "$conf" >"$KAFKA_CONFIG"
}

# _kafka_format: format the storage once. meta.properties in the data dir
# records the cluster id, so later starts reuse it (and the data).
_kafka_format() {
  local id fmtlog="$KAFKA_LOG_DIR/format.log"
  [ -f "$KAFKA_DATA_DIR/meta.properties" ] && return 0
  mkdir -p "$KAFKA_DATA_DIR"
  if ! id=$(java "${KAFKA_TOOL_JVM_OPTS[@]}" -cp "$KAFKA_JARS_DIR/*" \
    kafka.tools.StorageTool random-uuid 2>"$fmtlog"); then
    fail kafka "$fmtlog" "could not generate a cluster id"
  fi
  # Static quorum (controller.quorum.voters), hence no --standalone.
  if ! java "${KAFKA_TOOL_JVM_OPTS[@]}" -cp "$KAFKA_JARS_DIR/*" \
    kafka.tools.StorageTool format -t "$id" -c "$KAFKA_CONFIG" \
    --ignore-formatted >>"$fmtlog" 2>&1; then
    fail kafka "$fmtlog" "formatting the storage in $KAFKA_DATA_DIR failed"
  fi
  log "kafka: formatted $KAFKA_DATA_DIR (cluster id $id)"
}

kafka_up() {
  mkdir -p "$KAFKA_LOG_DIR"
  if _kafka_running; then
    if _kafka_ping; then
      log "kafka already up"
      return 0
    fi
    # Our broker is running but not answering yet (still starting, or
    # started by another kafka_up): wait for it rather than start a second.
    log "kafka: pid $(cat "$KAFKA_PIDFILE") running but not answering yet; waiting"
    _kafka_wait
    log "kafka: up on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  rm -f "$KAFKA_PIDFILE"
  local port
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_open "$port"; then
      fail kafka - "127.0.0.1:$port is taken by a process that is not ours" \
        "(no live $KAFKA_PIDFILE; see: ss -ltnp 'sport = :$port')"
    fi
  done

  need_cmd java openjdk-17-jre-headless
  _kafka_jars
  _kafka_write_config
  _kafka_format

  # Keep the previous run's log for post-mortems; start a fresh one.
  [ -f "$KAFKA_LOG" ] && mv -f "$KAFKA_LOG" "$KAFKA_LOG.1"
  rm -f "$KAFKA_LOG_DIR/readiness.log"
  log "kafka: starting broker on 127.0.0.1:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
  # GC flags as in Kafka's own kafka-server-start.sh. nohup plus redirected
  # stdio: the broker outlives this script and holds none of its pipes.
  nohup java -Xms256m -Xmx512m \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$KAFKA_SPEC_DIR/log4j2.properties" \
    "-Dkafka.logs.dir=$KAFKA_LOG_DIR" \
    -cp "$KAFKA_JARS_DIR/*" kafka.Kafka "$KAFKA_CONFIG" \
    >"$KAFKA_LOG" 2>&1 </dev/null &
  echo $! >"$KAFKA_PIDFILE"
  _kafka_wait
  log "kafka: up on 127.0.0.1:$KAFKA_PORT (pid $(cat "$KAFKA_PIDFILE"))"
}

kafka_status() {
  if _kafka_running && _kafka_ping; then
    echo "kafka: up (pid $(cat "$KAFKA_PIDFILE"), 127.0.0.1:$KAFKA_PORT)"
    return 0
  fi
  echo "kafka: down"
  return 1
}

kafka_down() {
  if ! _kafka_running; then
    rm -f "$KAFKA_PIDFILE"
    return 0
  fi
  log "kafka: stopping pid $(cat "$KAFKA_PIDFILE")"
  # SIGTERM makes Kafka shut down cleanly (a few seconds); stop_pidfile
  # escalates to SIGKILL after 30 s.
  stop_pidfile kafka "$KAFKA_PIDFILE"
}
