#!/usr/bin/env bash
# kafka.sh: a real single-node Apache Kafka broker (KRaft combined mode) for
# development and integration tests, without Docker.
#
# The Kafka jars are fetched from Maven Central with Maven into a cache outside
# the repository; the broker's config, data, pid file and logs live in a data
# directory, also outside the repository.
#
# Usage: scripts/kafka.sh COMMAND [ARGS...]
#   fetch              download the Kafka jars into the cache (once; marker file)
#   up                 fetch if needed, format storage once, start the broker in
#                      the background and wait until it answers (idempotent and
#                      safe to call concurrently: flock on a lock file)
#   down [--wipe]      stop the broker started by `up` (SIGTERM, then SIGKILL);
#                      --wipe also deletes its data directory
#   status             say whether the broker runs (exit 0 if it does, 1 if not)
#   settle [SECONDS]   wait (default up to 180s) until the broker has no topic
#                      deletion pending and the disk is quiet: Kafka deletes a
#                      topic's files 60s after the topic, and on this machine's
#                      ext4 (mounted with discard) removing a few GB stalls
#                      other writers for tens of seconds (measured: a bench
#                      started inside that window read half its usual peak)
#   topics ARGS...     run the kafka-topics tool (org.apache.kafka.tools.TopicCommand);
#                      --bootstrap-server 127.0.0.1:$KAFKA_PORT is added if absent
#   perf-test ARGS...  run kafka-producer-perf-test (org.apache.kafka.tools.ProducerPerformance)
#   storage ARGS...    run kafka-storage (kafka.tools.StorageTool)
#
# Cluster mode: three KRaft nodes on 127.0.0.1, each broker and controller,
# the three forming the controller quorum; replication factor 3,
# min.insync.replicas=2, unclean leader election off. Node i (1..3) listens
# on KAFKA_CLUSTER_PORT+i-1 (controller: +100) with its data in
# $TELEMETRY_CACHE/kafka-cluster/$KAFKA_CLUSTER_PORT/node<i>.
#   cluster-up                start the three nodes (format once, one cluster id)
#                             and wait until each answers
#   cluster-down [--wipe]     stop the three nodes; --wipe deletes their data
#   cluster-status            say which nodes run (exit 0 if all three do)
#   cluster-brokers           print the bootstrap list (host:port,host:port,...)
#   node-up N                 start node N (1..3) and wait until it answers
#   node-down N [--kill]      stop node N (SIGTERM, or SIGKILL with --kill)
#   node-pid N                print node N's pid if it runs
#
# Environment:
#   TELEMETRY_CACHE        cache root (default $HOME/.cache/telemetry)
#   KAFKA_VERSION          Apache Kafka version (default 4.1.1)
#   KAFKA_SCALA_VERSION    Scala suffix of the core artifact (default 2.13)
#   KAFKA_PORT             PLAINTEXT port on 127.0.0.1 (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port (default KAFKA_PORT+1)
#   KAFKA_DATA             data directory (default $TELEMETRY_CACHE/kafka-data/$KAFKA_PORT)
#   KAFKA_HEAP_OPTS        broker heap (default -Xms1g -Xmx1g)
#   KAFKA_GC_OPTS          broker garbage collector flags (default -XX:+UseZGC:
#                          G1 paused the broker 10-90 ms several times a second
#                          under ingest load here, which set our p99); the GC
#                          log goes to $KAFKA_DATA/gc.log
#   KAFKA_CLUSTER_PORT     first PLAINTEXT port of cluster mode (default 29092)
#   KAFKA_CLUSTER_HEAP_OPTS heap of each cluster node (default -Xms512m -Xmx512m:
#                          three JVMs share this 2-core, 23 GB machine)
#   KAFKA_UP_TIMEOUT       seconds `up` waits for the broker to answer (default 60)
#   KAFKA_STOP_TIMEOUT     seconds `down` waits after SIGTERM before SIGKILL (default 30)
#   JAVA_HOME / JAVA       which java to run (default: java on PATH)
set -euo pipefail

KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
KAFKA_SCALA_VERSION=${KAFKA_SCALA_VERSION:-2.13}
CACHE=${TELEMETRY_CACHE:-$HOME/.cache/telemetry}
KAFKA_HOME=$CACHE/kafka/$KAFKA_VERSION
LIBS=$KAFKA_HOME/libs
MARKER=$LIBS/.fetched
PORT=${KAFKA_PORT:-9092}
CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}
DATA=${KAFKA_DATA:-$CACHE/kafka-data/$PORT}
# Set by cluster mode for each node; the defaults are the single-node broker.
NODE_ID=${KAFKA_NODE_ID:-1}
VOTERS=${KAFKA_QUORUM_VOTERS:-$NODE_ID@127.0.0.1:$CONTROLLER_PORT}
REPLICATION=${KAFKA_REPLICATION:-1}
MIN_ISR=${KAFKA_MIN_ISR:-1}
CLUSTER_PORT=${KAFKA_CLUSTER_PORT:-29092}
CLUSTER_DIR=$CACHE/kafka-cluster/$CLUSTER_PORT
UP_TIMEOUT=${KAFKA_UP_TIMEOUT:-60}
STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
if [[ -n ${JAVA:-} ]]; then :
elif [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then JAVA=$JAVA_HOME/bin/java
else JAVA=java
fi

# Lock file descriptors: 8 = fetch lock, 9 = broker lock. The broker process
# must not inherit them (it would hold the lock for its whole life).
FETCH_LOCK=$CACHE/kafka/fetch-$KAFKA_VERSION.lock
BROKER_LOCK=$CACHE/kafka/broker-$PORT.lock

PID_FILE=$DATA/kafka.pid
PROPS=$DATA/server.properties
LOG_DIR=$DATA/logs         # Kafka's log.dirs (the partition data)
SERVER_LOG=$DATA/server.log
OUT_LOG=$DATA/kafka.out    # the JVM's own stdout/stderr (crashes, GC errors)

TOOL_JVM_OPTS=(-Xmx512m -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Xshare:auto -Djava.awt.headless=true)

log() { echo "kafka.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------
# fetch

write_pom() {
	cat >"$KAFKA_HOME/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/kafka.sh: the runtime classpath of Apache Kafka
     $KAFKA_VERSION (broker + kafka-storage, kafka-topics, kafka-producer-perf-test). -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.telemetry</groupId>
  <artifactId>kafka-libs</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$KAFKA_SCALA_VERSION</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
      <exclusions>
        <!-- only the connect-plugin-path tool needs Connect (Jetty, Jersey) -->
        <exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion>
      </exclusions>
    </dependency>
    <!-- Kafka logs through slf4j 1.7 and log4j2; bind slf4j to log4j2. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>2.24.3</version>
    </dependency>
  </dependencies>
</project>
EOF
}

# log4j2 configs: the broker logs to \${kafka.logs.dir}/server.log (rolled),
# the tools log warnings only, to stderr.
write_log_configs() {
	mkdir -p "$KAFKA_HOME/config"
	cat >"$KAFKA_HOME/config/log4j2.properties" <<'EOF'
# Broker logging (generated by scripts/kafka.sh).
status = warn
name = kafka-broker
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
EOF
	cat >"$KAFKA_HOME/config/tools-log4j2.properties" <<'EOF'
# Tools logging (generated by scripts/kafka.sh): warnings to stderr.
status = warn
name = kafka-tools
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = stderr
EOF
}

cmd_fetch() {
	[[ -f $MARKER ]] && return 0
	command -v mvn >/dev/null || die "mvn (Maven) is required to fetch the Kafka jars"
	mkdir -p "$KAFKA_HOME"
	exec 8>"$FETCH_LOCK"
	flock 8
	if [[ -f $MARKER ]]; then exec 8>&-; return 0; fi
	log "fetching Apache Kafka $KAFKA_VERSION jars with Maven into $LIBS"
	write_pom
	rm -rf "$LIBS.tmp"
	if ! mvn -q -B -Dstyle.color=never -f "$KAFKA_HOME/pom.xml" \
		org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" 2>&1 |
		sed 's/\x1b\[[0-9;]*m//g' >&2; then # Debian's Maven 3.8 prints colour codes even with -q
		rm -rf "$LIBS.tmp"
		die "Maven could not fetch org.apache.kafka:kafka_$KAFKA_SCALA_VERSION:$KAFKA_VERSION"
	fi
	[[ -f $LIBS.tmp/kafka_$KAFKA_SCALA_VERSION-$KAFKA_VERSION.jar ]] ||
		die "kafka_$KAFKA_SCALA_VERSION-$KAFKA_VERSION.jar missing after the Maven run"
	write_log_configs
	rm -rf "$LIBS"
	mv "$LIBS.tmp" "$LIBS"
	date -u +%FT%TZ >"$MARKER"
	log "fetched $(ls "$LIBS" | wc -l) jars ($(du -sh "$LIBS" | cut -f1))"
	exec 8>&-
}

# ---------------------------------------------------------------------------
# helpers

# run_tool MAIN_CLASS [JVM_OPTS...] -- ARGS...: run a Kafka tool on the cached classpath.
run_tool() {
	local main=$1
	shift
	local jvm=()
	while [[ $# -gt 0 && $1 != -- ]]; do jvm+=("$1"); shift; done
	[[ $# -gt 0 ]] && shift
	exec 8>&- 9>&- # never hand the locks to a JVM
	exec "$JAVA" "${jvm[@]}" \
		-Dlog4j2.configurationFile="$KAFKA_HOME/config/tools-log4j2.properties" \
		-cp "$LIBS/*" "$main" "$@"
}

# broker_pid: print the pid of the broker of this data dir if it is alive.
broker_pid() {
	[[ -f $PID_FILE ]] || return 1
	local pid
	pid=$(<"$PID_FILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	# Guard against a recycled pid: it must be our kafka.Kafka with our config.
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -F "kafka.Kafka $PROPS" >/dev/null || return 1
	echo "$pid"
}

# port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
	timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

write_server_properties() {
	cat >"$PROPS.tmp" <<EOF
# Generated by scripts/kafka.sh on every \`up\`: edits are overwritten.
# KRaft combined broker + controller for development and tests: one node, or
# node $NODE_ID of a cluster (cluster mode).
process.roles=broker,controller
node.id=$NODE_ID
controller.quorum.voters=$VOTERS
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$LOG_DIR

num.partitions=4
default.replication.factor=$REPLICATION
min.insync.replicas=$MIN_ISR
unclean.leader.election.enable=false
auto.create.topics.enable=false
delete.topic.enable=true
offsets.topic.replication.factor=$REPLICATION
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=$REPLICATION
transaction.state.log.min.isr=$MIN_ISR
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=$REPLICATION
share.coordinator.state.topic.min.isr=$MIN_ISR
group.initial.rebalance.delay.ms=0

# A small machine shared with others: modest thread pools, bounded disk use.
# Segments keep Kafka's default size (1 GiB): at 64 MiB every partition of a
# loaded topic rolled every ~20s, all within a second of each other, and the
# roll (a 34ms one was logged) stalled ingest for up to 300ms (measured).
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.segment.bytes=1073741824
log.retention.hours=24
log.retention.bytes=1073741824
log.retention.check.interval.ms=60000
EOF
	mv "$PROPS.tmp" "$PROPS"
}

format_storage() {
	[[ -f $LOG_DIR/meta.properties ]] && return 0
	local cid_file=${KAFKA_CLUSTER_ID_FILE:-$DATA/cluster.id} cid
	if [[ ! -s $cid_file ]]; then
		# A Kafka Uuid: 16 random bytes, URL-safe base64 without padding.
		head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$cid_file"
	fi
	cid=$(<"$cid_file")
	log "formatting KRaft storage in $LOG_DIR (cluster id $cid)"
	if ! (run_tool kafka.tools.StorageTool "${TOOL_JVM_OPTS[@]}" -- \
		format --ignore-formatted --cluster-id "$cid" --config "$PROPS") >"$DATA/format.out" 2>&1; then
		cat "$DATA/format.out" >&2
		die "formatting the storage failed"
	fi
}

# log_tail: the end of the broker's logs, for error messages.
log_tail() {
	local f
	for f in "$OUT_LOG" "$SERVER_LOG"; do
		[[ -s $f ]] || continue
		echo "--- last lines of $f:" >&2
		tail -n 30 "$f" >&2
	done
}

# ---------------------------------------------------------------------------
# up / down / status

cmd_up() {
	cmd_fetch
	mkdir -p "$DATA" "$CACHE/kafka"
	exec 9>"$BROKER_LOCK"
	flock -w $((UP_TIMEOUT * 3)) 9 || die "timed out waiting for the lock $BROKER_LOCK"

	local pid deadline
	deadline=$((SECONDS + UP_TIMEOUT))
	if pid=$(broker_pid); then
		if port_open "$PORT"; then
			echo "kafka: up at 127.0.0.1:$PORT (pid $pid, data $DATA)"
			exec 9>&-
			return 0
		fi
		# Alive but not (yet) answering: give it the usual time, do not start a second one.
		log "broker pid $pid is alive but 127.0.0.1:$PORT does not answer yet; waiting"
		wait_ready "$pid" "$deadline" 0
		exec 9>&-
		return 0
	fi
	if port_open "$PORT"; then
		die "127.0.0.1:$PORT is in use by a process that this script did not start for $DATA (stop it, or set KAFKA_PORT)"
	fi
	if port_open "$CONTROLLER_PORT"; then
		die "controller port 127.0.0.1:$CONTROLLER_PORT is in use (set KAFKA_CONTROLLER_PORT)"
	fi

	write_server_properties
	format_storage

	local log_offset=0
	[[ -f $SERVER_LOG ]] && log_offset=$(stat -c %s "$SERVER_LOG")
	{
		echo "=== $(date -u +%FT%TZ) starting Kafka $KAFKA_VERSION on 127.0.0.1:$PORT"
	} >>"$OUT_LOG"
	# shellcheck disable=SC2086 # KAFKA_HEAP_OPTS is a list of flags
	# shellcheck disable=SC2086 # KAFKA_GC_OPTS too
	setsid "$JAVA" ${KAFKA_HEAP_OPTS:--Xms1g -Xmx1g} ${KAFKA_GC_OPTS:--XX:+UseZGC} \
		"-Xlog:gc:file=$DATA/gc.log:uptime,time:filecount=2,filesize=10m" \
		-XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
		-Djava.awt.headless=true \
		-Dkafka.logs.dir="$DATA" \
		-Dlog4j2.configurationFile="$KAFKA_HOME/config/log4j2.properties" \
		-cp "$LIBS/*" kafka.Kafka "$PROPS" \
		</dev/null >>"$OUT_LOG" 2>&1 8>&- 9>&- &
	pid=$!
	echo "$pid" >"$PID_FILE"
	echo "$log_offset" >"$DATA/start.offset"
	if [[ ${KAFKA_UP_WAIT:-1} == 0 ]]; then
		# Cluster mode: a node finishes starting only once a quorum of
		# controllers runs, so the caller starts all of them, then waits.
		log "started node $NODE_ID pid $pid on 127.0.0.1:$PORT"
		exec 9>&-
		return 0
	fi
	log "started broker pid $pid; waiting up to ${UP_TIMEOUT}s for 127.0.0.1:$PORT"
	wait_ready "$pid" "$deadline" "$log_offset"
	exec 9>&-
}

# cmd_wait: wait until the broker started by `KAFKA_UP_WAIT=0 up` answers.
cmd_wait() {
	local pid offset=0
	pid=$(broker_pid) || { log_tail; die "no broker runs for $DATA"; }
	[[ -s $DATA/start.offset ]] && offset=$(<"$DATA/start.offset")
	wait_ready "$pid" $((SECONDS + UP_TIMEOUT)) "$offset"
}

# wait_ready PID DEADLINE LOG_OFFSET: wait until the broker listens, has logged
# that it started, and answers a metadata request (topics --list).
wait_ready() {
	local pid=$1 deadline=$2 offset=$3
	local started="Kafka Server started"
	while :; do
		if ! kill -0 "$pid" 2>/dev/null; then
			log_tail
			rm -f "$PID_FILE"
			die "the broker (pid $pid) exited during start-up"
		fi
		if port_open "$PORT"; then
			# The log may have rolled over since offset was taken: then search it all.
			local size
			size=$(stat -c %s "$SERVER_LOG" 2>/dev/null || echo 0)
			((size < offset)) && offset=0
			tail -c +$((offset + 1)) "$SERVER_LOG" 2>/dev/null | grep -F "$started" >/dev/null && break
		fi
		if ((SECONDS >= deadline)); then
			log_tail
			die "the broker (pid $pid) did not answer on 127.0.0.1:$PORT within ${UP_TIMEOUT}s"
		fi
		sleep 0.3
	done
	local left=$((deadline - SECONDS))
	((left < 5)) && left=5
	local out
	if ! out=$(timeout "$left" bash "$0" topics --list 2>&1 8>&- 9>&-); then
		echo "$out" >&2
		log_tail
		die "the broker (pid $pid) listens on 127.0.0.1:$PORT but does not answer metadata requests"
	fi
	echo "kafka: up at 127.0.0.1:$PORT (pid $pid, Kafka $KAFKA_VERSION, data $DATA, log $SERVER_LOG)"
}

cmd_down() {
	local wipe=0
	for a in "$@"; do
		case $a in
		--wipe) wipe=1 ;;
		*) die "down: unknown argument $a" ;;
		esac
	done
	mkdir -p "$CACHE/kafka"
	exec 9>"$BROKER_LOCK"
	flock -w 120 9 || die "timed out waiting for the lock $BROKER_LOCK"
	local pid
	if pid=$(broker_pid); then
		log "stopping broker pid $pid (SIGTERM)"
		kill -TERM "$pid" 2>/dev/null || true
		local deadline=$((SECONDS + STOP_TIMEOUT))
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
		if kill -0 "$pid" 2>/dev/null; then
			log "broker pid $pid still alive after ${STOP_TIMEOUT}s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
		fi
		echo "kafka: stopped (pid $pid)"
	else
		echo "kafka: not running on 127.0.0.1:$PORT (data $DATA)"
	fi
	rm -f "$PID_FILE"
	if ((wipe)); then
		rm -rf "$DATA"
		echo "kafka: wiped $DATA"
	fi
	exec 9>&-
}

cmd_status() {
	local pid
	if pid=$(broker_pid); then
		if port_open "$PORT"; then
			echo "kafka: running at 127.0.0.1:$PORT (pid $pid, data $DATA)"
		else
			echo "kafka: pid $pid alive but 127.0.0.1:$PORT does not answer (starting or stuck; see $SERVER_LOG)"
		fi
		return 0
	fi
	echo "kafka: not running on 127.0.0.1:$PORT (data $DATA)"
	return 1
}

cmd_settle() {
	local limit=${1:-180} start=$SECONDS pending quiet=0 full said=-10
	while ((SECONDS - start < limit)); do
		pending=$(find "$LOG_DIR" -maxdepth 1 -name '*-delete' 2>/dev/null | wc -l)
		full=0
		if [[ -r /proc/pressure/io ]]; then
			# "full avg10=X": share of the last 10s in which every task waited on I/O.
			full=$(awk '/^full/{split($2,a,"="); print (a[2] >= 1.0)}' /proc/pressure/io)
		fi
		if ((pending == 0 && full == 0)); then
			quiet=$((quiet + 1))
			((quiet >= 3)) && return 0
		else
			quiet=0
			if ((SECONDS - said >= 10)); then
				said=$SECONDS
				echo "kafka: settling ($((SECONDS - start))s): $pending topic directories pending deletion, I/O stalls in the last 10s: $([[ $full == 1 ]] && echo yes || echo no)" >&2
			fi
		fi
		sleep 1
	done
	echo "kafka: still not settled after ${limit}s; measuring anyway" >&2
}

# ---------------------------------------------------------------------------
# cluster mode

CLUSTER_NODES=(1 2 3)

# node_env N: the environment that makes this script act on cluster node N.
node_env() {
	local n=$1 voters="" i
	[[ $n =~ ^[123]$ ]] || die "no cluster node $n (nodes are 1, 2 and 3)"
	for i in "${CLUSTER_NODES[@]}"; do
		voters+="${voters:+,}$i@127.0.0.1:$((CLUSTER_PORT + 100 + i - 1))"
	done
	echo KAFKA_NODE_ID="$n" \
		KAFKA_PORT=$((CLUSTER_PORT + n - 1)) \
		KAFKA_CONTROLLER_PORT=$((CLUSTER_PORT + 100 + n - 1)) \
		KAFKA_DATA="$CLUSTER_DIR/node$n" \
		KAFKA_QUORUM_VOTERS="$voters" \
		KAFKA_REPLICATION=3 KAFKA_MIN_ISR=2 \
		KAFKA_CLUSTER_ID_FILE="$CLUSTER_DIR/cluster.id" \
		KAFKA_HEAP_OPTS="\"${KAFKA_CLUSTER_HEAP_OPTS:--Xms512m -Xmx512m}\""
}

# on_node N ARGS...: run this script with ARGS as cluster node N.
on_node() {
	local n=$1
	shift
	mkdir -p "$CLUSTER_DIR"
	eval "env $(node_env "$n") bash \"\$0\" \"\$@\""
}

# cmd_cluster_up starts the nodes that do not run (all of them before
# waiting: a node finishes starting only with a quorum of controllers) and
# waits for those it started; nodes already running are left alone.
cmd_cluster_up() {
	local n started=()
	for n in "${CLUSTER_NODES[@]}"; do
		on_node "$n" status >/dev/null && continue
		KAFKA_UP_WAIT=0 on_node "$n" up
		started+=("$n")
	done
	for n in "${started[@]}"; do on_node "$n" wait; done
	echo "kafka-cluster: up at $(cluster_brokers)"
}

cmd_node_up() {
	KAFKA_UP_WAIT=0 on_node "$1" up
	on_node "$1" wait
}

cmd_node_down() {
	local n=$1 pid
	shift
	case ${1:-} in
	--kill)
		if pid=$(on_node "$n" node-pid); then
			kill -KILL "$pid"
			while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
			echo "kafka: node $n killed (pid $pid)"
		fi
		;;
	"") on_node "$n" down ;;
	*) die "node-down: unknown argument $1" ;;
	esac
}

# cmd_cluster_down stops the nodes together: stopped one after another, the
# last one waits in its controlled shutdown for a quorum that has gone (30s,
# then SIGKILL).
cmd_cluster_down() {
	local n pids=() rc=0
	for n in "${CLUSTER_NODES[@]}"; do
		on_node "$n" down "$@" &
		pids+=($!)
	done
	for n in "${pids[@]}"; do wait "$n" || rc=1; done
	((rc == 0)) || die "a node did not stop"
	if [[ ${1:-} == --wipe ]]; then rm -rf "$CLUSTER_DIR"; fi
}

cmd_cluster_status() {
	local n rc=0
	for n in "${CLUSTER_NODES[@]}"; do on_node "$n" status || rc=1; done
	return $rc
}

cluster_brokers() {
	local n out=""
	for n in "${CLUSTER_NODES[@]}"; do out+="${out:+,}127.0.0.1:$((CLUSTER_PORT + n - 1))"; done
	echo "$out"
}

# ---------------------------------------------------------------------------

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

main() {
	local cmd=${1:-}
	[[ $# -gt 0 ]] && shift
	case $cmd in
	fetch) cmd_fetch ;;
	up) cmd_up ;;
	down) cmd_down "$@" ;;
	status) cmd_status ;;
	wait) cmd_wait ;;
	cluster-up) cmd_fetch && cmd_cluster_up ;;
	cluster-down) cmd_cluster_down "$@" ;;
	cluster-status) cmd_cluster_status ;;
	cluster-brokers) cluster_brokers ;;
	node-up) cmd_node_up "${1:?node-up N}" ;;
	node-down) cmd_node_down "${1:?node-down N}" "${@:2}" ;;
	node-pid) broker_pid ;;
	settle) cmd_settle "$@" ;;
	topics)
		cmd_fetch
		local a has_bs=0
		for a in "$@"; do [[ $a == --bootstrap-server* ]] && has_bs=1; done
		if ((has_bs)); then
			run_tool org.apache.kafka.tools.TopicCommand "${TOOL_JVM_OPTS[@]}" -- "$@"
		else
			run_tool org.apache.kafka.tools.TopicCommand "${TOOL_JVM_OPTS[@]}" -- --bootstrap-server "127.0.0.1:$PORT" "$@"
		fi
		;;
	perf-test)
		cmd_fetch
		# Full JIT here: the tool's own speed is part of what it measures.
		run_tool org.apache.kafka.tools.ProducerPerformance -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true -- "$@"
		;;
	storage)
		cmd_fetch
		run_tool kafka.tools.StorageTool "${TOOL_JVM_OPTS[@]}" -- "$@"
		;;
	-h | --help | help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
