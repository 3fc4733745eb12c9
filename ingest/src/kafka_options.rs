//! Which librdkafka properties may be set, and by whom.
//!
//! librdkafka reads some properties as orders to load code, run a command or open a file chosen by the value
//! (`plugin.library.paths` dlopen()s a library, `sasl.kerberos.kinit.cmd` runs a shell command,
//! `ssl.engine.location` loads an OpenSSL engine, `*.location` / `*.file` read files, `offset.store.path` writes
//! one). Two levels of trust:
//!
//! - **API callers** (`POST /pipelines`, `aurora-ingest connect --spec`, the console): only the tuning keys of
//!   [`API_ALLOWED`] — timeouts, fetch and queue sizes, backoffs, the assignment strategy, the isolation level.
//! - **The operator's config file** (`[kafka.options]`, `kafka_options` of `[[pipelines]]`): any property except
//!   those that load code, run commands, read or write files or reach out to URLs ([`operator_refusal`]), and
//!   except those Aurora sets itself from its own typed keys ([`OWNED`]).
//!
//! Names are compared as librdkafka compares them (exactly, `strcmp`), after a check that they are made of
//! lowercase letters, digits, `.` and `_` only; the patterns of the operator's refusals are matched on both the
//! dotted and the underscored spelling, so an alias such as `ssl_engine_location` is caught too.

/// Tuning properties an API caller may set for its pipeline's consumers.
pub const API_ALLOWED: &[&str] = &[
    // group membership timing
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "coordinator.query.interval.ms",
    "partition.assignment.strategy",
    // what is read, and how much at a time
    "isolation.level",
    "check.crcs",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "fetch.wait.max.ms",
    "fetch.error.backoff.ms",
    "fetch.queue.backoff.ms",
    "fetch.message.max.bytes",
    "max.partition.fetch.bytes",
    "queued.min.messages",
    "queued.max.messages.kbytes",
    "receive.message.max.bytes",
    // connections and retries
    "socket.timeout.ms",
    "socket.connection.setup.timeout.ms",
    "socket.keepalive.enable",
    "socket.nagle.disable",
    "socket.receive.buffer.bytes",
    "socket.send.buffer.bytes",
    "connections.max.idle.ms",
    "reconnect.backoff.ms",
    "reconnect.backoff.max.ms",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "metadata.max.age.ms",
    "topic.metadata.refresh.interval.ms",
    "client.rack",
    // the statistics lag is computed from
    "statistics.interval.ms",
];

/// Properties Aurora sets itself, each from a typed key of its own (named in the refusal).
pub const OWNED: &[(&str, &str)] = &[
    ("bootstrap.servers", "kafka.brokers"),
    ("metadata.broker.list", "kafka.brokers"),
    ("security.protocol", "kafka.security_protocol"),
    ("sasl.mechanism", "kafka.sasl_mechanism"),
    ("sasl.mechanisms", "kafka.sasl_mechanism"),
    ("sasl.username", "kafka.sasl_username"),
    (
        "sasl.password",
        "kafka.sasl_password / sasl_password_env / sasl_password_file",
    ),
    ("ssl.ca.location", "kafka.ssl_ca_file"),
    ("group.id", "the pipeline's group_id"),
    ("group.instance.id", "the pipeline's group_id"),
    ("client.id", "the pipeline's name"),
    (
        "enable.auto.commit",
        "nothing: offsets are committed after ClickHouse acknowledges a batch",
    ),
    (
        "auto.commit.enable",
        "nothing: offsets are committed after ClickHouse acknowledges a batch",
    ),
    (
        "enable.auto.offset.store",
        "nothing: offsets are committed after ClickHouse acknowledges a batch",
    ),
    ("auto.offset.reset", "the pipeline's start_offset"),
];

/// Parts of a property name that mark it as loading code, running a command, touching a file chosen by the
/// value, reaching a URL, or reaching into the process (callbacks, signals, test mocks). Matched against the
/// name with `_` read as `.`, segment-wise (`ssl.engine.location` has the segments `ssl`, `engine`, `location`).
const REFUSED_SEGMENTS: &[&str] = &[
    "plugin",       // plugin.library.paths: dlopen()
    "interceptors", // interceptor chains (code)
    "kerberos",     // sasl.kerberos.kinit.cmd runs a shell command; keytab, principal
    "kinit",
    "cmd",
    "engine",      // ssl.engine.location / ssl.engine.id: OpenSSL engines (code)
    "providers",   // ssl.providers: OpenSSL providers (code)
    "oauthbearer", // token endpoint URLs, assertion files, private key files, config
    "jaas",        // sasl.jaas.config
    "location",    // ssl.*.location, https.ca.location: files read
    "file",        // *.file: files read
    "path",        // offset.store.path: file written
    "paths",
    "keystore", // ssl.keystore.*: PKCS#12 file
    "truststore",
    "stores", // ssl.ca.certificate.stores
    "cb",     // *_cb: callbacks (pointers, never strings)
    "callback",
    "opaque",
    "internal", // internal.termination.signal
    "mock",     // test.mock.*: replaces the brokers with an in-process mock
    "test",
    "builtin", // builtin.features (read-only)
];

/// Exact names refused to the operator beyond the patterns (files or code by another name).
const REFUSED_NAMES: &[&str] = &["offset.store.method", "ssl_ca", "ssl_certificate", "ssl_key"];

/// Why a property name is not even a librdkafka property name.
fn malformed(key: &str) -> Option<String> {
    let ok = !key.is_empty()
        && key.len() <= 100
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_');
    (!ok).then(|| format!("{key:?} is not a librdkafka property name (lowercase letters, digits, . and _)"))
}

/// Why the operator's config may not set `key`, or `None` when it may.
pub fn operator_refusal(key: &str) -> Option<String> {
    if let Some(reason) = malformed(key) {
        return Some(reason);
    }
    if let Some((_, typed)) = OWNED.iter().find(|(name, _)| *name == key) {
        return Some(format!("{key} is set by aurora-ingest itself (use {typed})"));
    }
    let dotted = key.replace('_', ".");
    let refused_segment = dotted.split('.').find(|s| REFUSED_SEGMENTS.contains(s));
    if refused_segment.is_some() || REFUSED_NAMES.contains(&key) || REFUSED_NAMES.contains(&dotted.as_str()) {
        return Some(format!(
            "{key} is refused: librdkafka would load code, run a command, read or write a file, or reach a URL \
             named by its value (see ingest/README.md, \"librdkafka properties\")"
        ));
    }
    None
}

/// Why an API caller may not set `key`, or `None` when it may.
pub fn api_refusal(key: &str) -> Option<String> {
    if let Some(reason) = malformed(key) {
        return Some(reason);
    }
    if API_ALLOWED.contains(&key) {
        return None;
    }
    let why = operator_refusal(key).unwrap_or_else(|| format!("{key} is not one of the tuning properties"));
    Some(format!(
        "{why}; through the API only these may be set: {} (others belong in the daemon's config file)",
        API_ALLOWED.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_commands_and_files_are_refused_to_everyone() {
        for key in [
            "plugin.library.paths",
            "sasl.kerberos.kinit.cmd",
            "sasl.kerberos.keytab",
            "sasl.kerberos.principal",
            "sasl.kerberos.service.name",
            "sasl.kerberos.min.time.before.relogin",
            "ssl.engine.location",
            "ssl_engine_location",
            "ssl.engine.id",
            "ssl_engine_callback_data",
            "ssl.providers",
            "ssl.key.location",
            "ssl.certificate.location",
            "ssl.crl.location",
            "ssl.keystore.location",
            "ssl.keystore.password",
            "ssl.truststore.location",
            "ssl.ca.certificate.stores",
            "https.ca.location",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.method",
            "sasl.oauthbearer.token.endpoint.url",
            "sasl.oauthbearer.assertion.file",
            "sasl.oauthbearer.assertion.private.key.file",
            "sasl.oauthbearer.assertion.jwt.template.file",
            "enable.sasl.oauthbearer.unsecure.jwt",
            "sasl.jaas.config",
            "interceptors",
            "offset.store.path",
            "offset.store.method",
            "internal.termination.signal",
            "test.mock.num.brokers",
            "rebalance_cb",
            "opaque",
            "builtin.features",
        ] {
            assert!(operator_refusal(key).is_some(), "operator may set {key}");
            assert!(api_refusal(key).is_some(), "API may set {key}");
        }
    }

    #[test]
    fn aurora_owned_keys_name_the_typed_key() {
        for (key, typed) in OWNED {
            let reason = operator_refusal(key).unwrap();
            assert!(reason.contains(typed), "{reason}");
            assert!(api_refusal(key).is_some(), "{key}");
        }
        assert!(operator_refusal("sasl.password")
            .unwrap()
            .contains("sasl_password_env"));
    }

    #[test]
    fn the_operator_may_tune_debug_and_log() {
        for key in [
            "session.timeout.ms",
            "debug",
            "log.connection.close",
            "log.queue",
            "enable.partition.eof",
            "ssl.endpoint.identification.algorithm",
            "ssl.cipher.suites",
            "api.version.request",
            "topic.metadata.refresh.interval.ms",
        ] {
            assert_eq!(operator_refusal(key), None, "{key}");
        }
    }

    #[test]
    fn the_api_gets_the_allowlist_only() {
        for key in API_ALLOWED {
            assert_eq!(api_refusal(key), None, "{key}");
            assert_eq!(
                operator_refusal(key),
                None,
                "{key}: what the API may set, the operator may too"
            );
        }
        for key in [
            "debug",
            "log.queue",
            "enable.partition.eof",
            "ssl.cipher.suites",
            "api.version.request",
        ] {
            let reason = api_refusal(key).unwrap();
            assert!(reason.contains("not one of the tuning properties"), "{reason}");
            assert!(
                reason.contains("session.timeout.ms"),
                "the refusal lists what is allowed: {reason}"
            );
        }
    }

    #[test]
    fn names_librdkafka_would_not_recognise_are_refused() {
        for key in [
            "",
            "Plugin.library.paths",
            "session.timeout.ms ",
            "a=b",
            "x\0y",
            "sasl-kerberos",
        ] {
            assert!(operator_refusal(key).is_some(), "{key:?}");
            assert!(api_refusal(key).is_some(), "{key:?}");
        }
    }
}
