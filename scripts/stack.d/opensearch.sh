# OpenSearch 2.19 for the dev stack: one node on 127.0.0.1, embedded from
# Maven Central jars (there is no Docker engine and no tarball download here).
# Sourced after common.sh; defines opensearch_up, opensearch_down and
# opensearch_status.
#
# Layout:
#   scripts/stack.d/opensearch/pom.xml          jar set (OpenSearch + modules)
#   scripts/stack.d/opensearch/Launcher.java    starts org.opensearch.node.Node
#   scripts/stack.d/opensearch/log4j2.properties
#   $STACK_DIR/jars/opensearch/                 resolved jars (cached)
#   $STACK_DIR/opensearch/{classes,data,logs,config}, opensearch.pid
#
# OpenSearch 3.x needs Java 21; 2.19.x runs on the Java 17 we have. Set
# OPENSEARCH_JAVA_HOME to run it on another JDK.

OPENSEARCH_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/opensearch" && pwd)"
OPENSEARCH_HOME="$STACK_DIR/opensearch"
OPENSEARCH_JARS="$JARS_DIR/opensearch"
OPENSEARCH_CLASSES="$OPENSEARCH_HOME/classes"
OPENSEARCH_LOG="$OPENSEARCH_HOME/logs/opensearch.log"
OPENSEARCH_PIDFILE="$OPENSEARCH_HOME/opensearch.pid"
OPENSEARCH_JAVA_HOME="${OPENSEARCH_JAVA_HOME:-}"
# Extra JVM flags, split on whitespace (e.g. "-Xmx1g" to raise the heap).
OPENSEARCH_JAVA_OPTS="${OPENSEARCH_JAVA_OPTS:-}"

_opensearch_java() { printf '%s' "${OPENSEARCH_JAVA_HOME:+$OPENSEARCH_JAVA_HOME/bin/}java"; }
_opensearch_javac() { printf '%s' "${OPENSEARCH_JAVA_HOME:+$OPENSEARCH_JAVA_HOME/bin/}javac"; }

# True once the node answers and has at least a yellow cluster (an unmet
# wait_for_status is an HTTP 408, which -f turns into a failure). Quiet: it
# is polled while the port is still closed.
_opensearch_healthy() {
  curl -fsS --max-time 5 -o /dev/null \
    "http://127.0.0.1:$OPENSEARCH_PORT/_cluster/health?wait_for_status=yellow&timeout=1s" 2>/dev/null
}

# Copy the runtime jars of pom.xml into $OPENSEARCH_JARS. The marker holds the
# pom's checksum: while it matches, nothing is resolved (a warm start is
# offline); editing the pom re-resolves into a fresh folder.
_opensearch_jars() {
  local pom="$OPENSEARCH_SRC/pom.xml" marker="$OPENSEARCH_JARS/.complete" want tmp mvnlog
  want=$(sha256sum "$pom" | cut -d' ' -f1)
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ]; then
    return 0
  fi
  need_cmd mvn maven
  log "opensearch: resolving jars with Maven (first start only)"
  # Resolve next to the final folder and swap it in, so an interrupted run
  # never leaves a half-filled folder that looks complete.
  tmp="$OPENSEARCH_JARS.tmp"
  mvnlog="$OPENSEARCH_HOME/logs/maven.log"
  rm -rf "$tmp"
  mkdir -p "$tmp" "$(dirname "$mvnlog")"
  if ! mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$tmp" >"$mvnlog" 2>&1; then
    fail opensearch "$mvnlog" "could not resolve the OpenSearch jars from Maven Central"
  fi
  printf '%s\n' "$want" >"$tmp/.complete"
  rm -rf "$OPENSEARCH_JARS"
  mv "$tmp" "$OPENSEARCH_JARS"
}

# Compile Launcher.java once into $OPENSEARCH_CLASSES (faster than running the
# source file on every start). The stamp ties the classes to the source and
# to the jar set they were compiled against.
_opensearch_classes() {
  local src="$OPENSEARCH_SRC/Launcher.java" stamp="$OPENSEARCH_CLASSES/.stamp" want tmp
  want="$(sha256sum "$src" | cut -d' ' -f1) $(cat "$OPENSEARCH_JARS/.complete")"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  need_cmd "$(_opensearch_javac)" openjdk-17-jdk-headless
  tmp="$OPENSEARCH_CLASSES.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if ! "$(_opensearch_javac)" -nowarn -d "$tmp" -cp "$OPENSEARCH_JARS/*" "$src" \
      >"$OPENSEARCH_HOME/logs/javac.log" 2>&1; then
    fail opensearch "$OPENSEARCH_HOME/logs/javac.log" "could not compile $src"
  fi
  printf '%s\n' "$want" >"$tmp/.stamp"
  rm -rf "$OPENSEARCH_CLASSES"
  mv "$tmp" "$OPENSEARCH_CLASSES"
}

opensearch_up() {
  need_cmd curl curl
  if pid_alive "$OPENSEARCH_PIDFILE"; then
    if _opensearch_healthy; then
      log "opensearch already up"
      return 0
    fi
    # Still starting (e.g. an earlier call gave up waiting): wait for it below
    # rather than starting a second node on the same data path.
    log "opensearch: pid $(cat "$OPENSEARCH_PIDFILE") is running but not ready yet; waiting"
  else
    rm -f "$OPENSEARCH_PIDFILE"
    if port_open "$OPENSEARCH_PORT" || port_open "$OPENSEARCH_TRANSPORT_PORT"; then
      fail opensearch "$OPENSEARCH_LOG" \
        "port $OPENSEARCH_PORT or $OPENSEARCH_TRANSPORT_PORT is taken by a process this script did not start"
    fi
    mkdir -p "$OPENSEARCH_HOME/data" "$OPENSEARCH_HOME/logs" "$OPENSEARCH_HOME/config" "$OPENSEARCH_HOME/tmp"
    _opensearch_jars
    _opensearch_classes

    # The log is kept across restarts; a marker line shows where each run begins.
    printf '\n===== opensearch start %s =====\n' "$(date -u +%FT%TZ)" >>"$OPENSEARCH_LOG"
    local -a extra_opts=()
    read -r -a extra_opts <<<"$OPENSEARCH_JAVA_OPTS"
    # JVM flags: the heap for a dev node, and the system properties the
    # distribution's jvm.options would set (locale providers keep 2.x date
    # parsing as in the distribution; log4j must not shut down before the
    # node has logged its own shutdown). TieredStopAtLevel=1 (C1 JIT only)
    # cut the start from ~15 s to ~8 s on 2 busy cores, most of it painless
    # building its whitelists; a dev node's small queries do not need C2.
    nohup "$(_opensearch_java)" \
      -Xms512m -Xmx768m \
      -XX:+UseG1GC -XX:TieredStopAtLevel=1 -XX:-OmitStackTraceInFastThrow \
      -Djava.awt.headless=true -Dfile.encoding=UTF-8 -Djna.nosys=true \
      -Djava.locale.providers=SPI,COMPAT \
      -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true \
      -Dio.netty.recycler.maxCapacityPerThread=0 -Dio.netty.allocator.numDirectArenas=0 \
      -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true \
      -Dlog4j2.configurationFile="$OPENSEARCH_SRC/log4j2.properties" \
      -Djava.io.tmpdir="$OPENSEARCH_HOME/tmp" \
      ${extra_opts[@]+"${extra_opts[@]}"} \
      -cp "$OPENSEARCH_CLASSES:$OPENSEARCH_JARS/*" \
      Launcher \
      "path.home=$OPENSEARCH_HOME" \
      "path.data=$OPENSEARCH_HOME/data" \
      "path.logs=$OPENSEARCH_HOME/logs" \
      cluster.name=orderflow-dev \
      node.name=orderflow-dev-node \
      discovery.type=single-node \
      network.host=127.0.0.1 \
      "http.port=$OPENSEARCH_PORT" \
      "transport.port=$OPENSEARCH_TRANSPORT_PORT" \
      cluster.routing.allocation.disk.threshold_enabled=false \
      </dev/null >>"$OPENSEARCH_LOG" 2>&1 &
    echo $! >"$OPENSEARCH_PIDFILE"
    log "opensearch: started pid $(cat "$OPENSEARCH_PIDFILE"), waiting for http://127.0.0.1:$OPENSEARCH_PORT"
  fi

  local deadline=$((SECONDS + STACK_WAIT_SECS))
  until _opensearch_healthy; do
    if ! pid_alive "$OPENSEARCH_PIDFILE"; then
      rm -f "$OPENSEARCH_PIDFILE"
      fail opensearch "$OPENSEARCH_LOG" "the process exited during startup"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      # Do not leave a half-started JVM holding the ports and the data lock.
      stop_pidfile opensearch "$OPENSEARCH_PIDFILE"
      fail opensearch "$OPENSEARCH_LOG" "not ready within ${STACK_WAIT_SECS}s (stopped it)"
    fi
    sleep 0.5
  done

  # A single node can never place replicas, so make new indices default to 0
  # of them (green instead of yellow). This only takes effect as a cluster
  # setting, not as a node setting; it persists in the data folder, and
  # setting it again is a no-op.
  if ! curl -fsS --max-time 10 -o /dev/null -XPUT -H 'Content-Type: application/json' \
      -d '{"persistent":{"cluster.default_number_of_replicas":0}}' \
      "http://127.0.0.1:$OPENSEARCH_PORT/_cluster/settings" 2>>"$OPENSEARCH_LOG"; then
    fail opensearch "$OPENSEARCH_LOG" "could not set cluster.default_number_of_replicas"
  fi
  log "opensearch: up on http://127.0.0.1:$OPENSEARCH_PORT"
}

opensearch_status() {
  if pid_alive "$OPENSEARCH_PIDFILE" && _opensearch_healthy; then
    echo "opensearch: up (pid $(cat "$OPENSEARCH_PIDFILE"), http://127.0.0.1:$OPENSEARCH_PORT)"
    return 0
  fi
  echo "opensearch: down"
  return 1
}

opensearch_down() {
  stop_pidfile opensearch "$OPENSEARCH_PIDFILE"
}
