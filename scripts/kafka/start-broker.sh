#!/usr/bin/env bash
# Starts a real single-node Apache Kafka broker (KRaft combined mode: broker and controller in one
# JVM) for the Kafka test lane, and prints KAFKA_BROKERS=127.0.0.1:<port>.
#
#   bash scripts/kafka/start-broker.sh      # or: npm run kafka:start
#   bash scripts/kafka/stop-broker.sh       # or: npm run kafka:stop
#
# - The broker is the official Apache Kafka from Maven Central (version: kafka.version in
#   scripts/kafka/pom.xml), fetched once into .kafka/lib and run with this machine's Java (17+).
# - Idempotent: when the broker recorded in the state file is still up, it is reused.
# - Free ports for the broker and controller listeners; data and logs in a fresh temp dir.
# - State: $KAFKA_STATE_DIR/broker.env (default .kafka/broker.env): KAFKA_BROKERS, KAFKA_PID,
#   KAFKA_RUN_DIR. The test lane (test/support/kafka-broker.ts) uses a state dir of its own.
# - Fails loudly (non-zero exit, the tail of the broker log) when Java or Maven is missing or the
#   broker is not ready within KAFKA_START_TIMEOUT seconds (default 60).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
kafka_dir="$root/.kafka"
lib="$kafka_dir/lib"
state_dir="${KAFKA_STATE_DIR:-$kafka_dir}"
env_file="$state_dir/broker.env"
timeout_s="${KAFKA_START_TIMEOUT:-60}"

say() { printf '[kafka] %s\n' "$*" >&2; }
die() {
  say "ERROR: $*"
  exit 1
}
now_ms() { date +%s%3N; }

version="$(sed -n 's|.*<kafka.version>\(.*\)</kafka.version>.*|\1|p' "$here/pom.xml")"
[ -n "$version" ] || die "no <kafka.version> in $here/pom.xml"

command -v java >/dev/null 2>&1 ||
  die "Java not found on PATH. The Kafka lane runs Apache Kafka $version with the machine's Java: install Java 17+ (e.g. apt-get install openjdk-17-jre-headless)."

java_major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)[."].*/\1/p' | head -n 1)"
[ "${java_major:-0}" -ge 17 ] 2>/dev/null ||
  die "Java ${java_major:-of unknown version} found; Apache Kafka $version brokers need Java 17+ ($(command -v java))."

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
is_our_broker() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q 'kafka\.Kafka'; }

# --- Reuse a broker that is already up -------------------------------------------------------------
if [ -f "$env_file" ]; then
  # shellcheck disable=SC1090
  KAFKA_BROKERS="" KAFKA_PID="" KAFKA_RUN_DIR=""
  . "$env_file"
  if [ -n "$KAFKA_PID" ] && is_our_broker "$KAFKA_PID" && port_open "${KAFKA_BROKERS##*:}"; then
    say "reusing the running broker (pid $KAFKA_PID)"
    echo "KAFKA_BROKERS=$KAFKA_BROKERS"
    exit 0
  fi
  say "stale $env_file (broker pid ${KAFKA_PID:-?} is gone); starting a new broker"
  [ -n "${KAFKA_RUN_DIR:-}" ] && [ -d "$KAFKA_RUN_DIR" ] && rm -rf "$KAFKA_RUN_DIR"
  rm -f "$env_file"
fi

# --- The jars: fetched from Maven Central once, skipped when complete ------------------------------
marker="$lib/.complete"
if [ "$(cat "$marker" 2>/dev/null || true)" != "$version" ] || [ ! -f "$lib/kafka_2.13-$version.jar" ]; then
  command -v mvn >/dev/null 2>&1 ||
    die "Maven (mvn) not found: it fetches Apache Kafka $version from Maven Central once (apt-get install maven)."
  say "fetching Apache Kafka $version from Maven Central into ${lib#"$root"/} ..."
  t0=$(now_ms)
  rm -rf "$lib"
  mkdir -p "$lib"
  mvn_log="$kafka_dir/maven.log"
  if ! mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies -Dkafka.lib.dir="$lib" \
    >"$mvn_log" 2>&1; then
    tail -n 40 "$mvn_log" >&2
    die "mvn dependency:copy-dependencies failed (log: $mvn_log)"
  fi
  echo "$version" >"$marker"
  ms=$(($(now_ms) - t0))
  say "fetched $(find "$lib" -name '*.jar' | wc -l) jars in $((ms / 1000)).$((ms % 1000 / 100)) s"
fi

# --- Ports, config, storage ------------------------------------------------------------------------
# Two distinct free ports, held at once while picked (the OS hands out port 0).
read -r port controller_port < <(node -e '
  const net = require("node:net");
  const a = net.createServer().listen(0, "127.0.0.1", () => {
    const b = net.createServer().listen(0, "127.0.0.1", () => {
      console.log(a.address().port, b.address().port);
      a.close(); b.close();
    });
  });')
[ -n "${controller_port:-}" ] || die "could not pick free ports"

mkdir -p "$state_dir"
run_dir="$(mktemp -d "${TMPDIR:-/tmp}/chunkrelay-kafka.XXXXXX")"
mkdir -p "$run_dir/data" "$run_dir/logs"
log="$run_dir/logs/server.log"
cat >"$run_dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$run_dir/data
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
PROPS

jvm=(
  java -Xms128m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError
  -Djava.awt.headless=true -Dkafka.logs.dir="$run_dir/logs"
  -Dlog4j2.configurationFile="$here/log4j2.properties" -cp "$lib/*"
)

t0=$(now_ms)
# A random cluster id (16 bytes, base64url without padding), as `kafka-storage random-uuid` makes.
cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)"
"${jvm[@]}" kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$run_dir/server.properties" \
  >"$run_dir/logs/format.log" 2>&1 || {
  cat "$run_dir/logs/format.log" >&2
  die "kafka.tools.StorageTool format failed (log: $run_dir/logs/format.log)"
}

# --- Start and wait until ready --------------------------------------------------------------------
nohup "${jvm[@]}" kafka.Kafka "$run_dir/server.properties" >"$run_dir/logs/stdout.log" 2>&1 </dev/null &
pid=$!

fail_start() {
  say "ERROR: $*"
  say "--- tail of $log ---"
  tail -n 40 "$log" >&2 2>/dev/null || true
  say "--- tail of $run_dir/logs/stdout.log ---"
  tail -n 20 "$run_dir/logs/stdout.log" >&2 2>/dev/null || true
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  exit 1
}

deadline=$(($(now_ms) + timeout_s * 1000))
until grep -q 'Kafka Server started' "$log" 2>/dev/null && port_open "$port"; do
  kill -0 "$pid" 2>/dev/null || fail_start "the broker exited during start-up"
  [ "$(now_ms)" -lt "$deadline" ] || fail_start "the broker was not ready within ${timeout_s} s"
  sleep 0.2
done

cat >"$env_file" <<ENV
KAFKA_BROKERS=127.0.0.1:$port
KAFKA_PID=$pid
KAFKA_RUN_DIR=$run_dir
KAFKA_VERSION=$version
ENV
ms=$(($(now_ms) - t0))
say "Apache Kafka $version up in $((ms / 1000)).$((ms % 1000 / 100)) s (storage format and start; pid $pid, log $log)"
echo "KAFKA_BROKERS=127.0.0.1:$port"
