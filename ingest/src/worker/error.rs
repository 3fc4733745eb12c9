//! Why a worker cannot run: its Kafka consumer cannot be made or subscribed, its sink is gone, or the SASL
//! password cannot be read. The pipeline shows the message as its `last_error` (state `failed`).

use rdkafka::error::KafkaError;

use crate::config::SecretError;

/// Why a worker stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The SASL password's variable or file could be read at load and no longer can.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// librdkafka refused the consumer's properties.
    #[error("cannot create the Kafka consumer: {0}")]
    CreateConsumer(#[source] KafkaError),
    #[error("cannot subscribe to {topics:?}: {source}")]
    Subscribe { topics: Vec<String>, source: KafkaError },
    /// The sink's task ended (it panicked) while the consumer had a batch for it.
    #[error("the inserter stopped")]
    SinkStopped,
}
