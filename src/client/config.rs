//! Everything a client can be configured with, and defaults that notice a dead network in seconds.

use std::time::Duration;

use crate::proto::client::{ClientCoreConfig, ReconnectPolicy};
use crate::proto::version::DEFAULT_PROTOCOL_VERSION;
use crate::runtime::connection::ConnectionSettings;
use crate::runtime::dialer::DialSettings;

/// How a [`crate::Client`] behaves. Start from `ClientConfig::default()` and change what you need.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The version sent when linking; the server accepts the same major.minor. Default `0.5.5`.
    pub protocol_version: String,
    /// Reconnect (and re-link) automatically when the connection drops. Default `None`: off.
    pub reconnect: Option<ReconnectPolicy>,
    /// When nothing at all arrives from the server for this long, the connection is closed (and,
    /// with reconnect on, dialed again). The client pings at half this interval, so a healthy but
    /// quiet server answers with pongs. Default 10 s; `None`: off.
    pub liveness_timeout: Option<Duration>,
    /// Resolving, connecting and the WebSocket handshake must finish within this time. Default 10 s.
    pub connect_timeout: Duration,
    /// Largest incoming message in bytes; a larger one closes the connection (code 1009). Default 1 MiB.
    pub max_message_size: usize,
    /// Most bytes waiting to be written before the connection is closed as stalled. Default 1 MiB.
    pub max_queued_bytes: usize,
    /// Most bytes of received messages waiting for the host to poll, each counted at four times
    /// its size (it waits parsed); past it the socket is no longer read until the host catches up.
    /// Default 16 MiB; never less than one largest message.
    pub event_queue_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            protocol_version: DEFAULT_PROTOCOL_VERSION.to_string(),
            reconnect: None,
            liveness_timeout: Some(Duration::from_secs(10)),
            connect_timeout: Duration::from_secs(10),
            max_message_size: 1 << 20,
            max_queued_bytes: 1 << 20,
            event_queue_bytes: 16 << 20,
        }
    }
}

impl ClientConfig {
    /// Splits the configuration into the protocol's part, the I/O's part (without the URL) and
    /// the inbox size.
    pub(crate) fn split(self, jitter_seed: u64) -> (ClientCoreConfig, DialSettings, usize) {
        let core = ClientCoreConfig { protocol_version: self.protocol_version, reconnect: self.reconnect, jitter_seed };
        let dial = DialSettings {
            url: String::new(),
            connection: ConnectionSettings {
                ping_interval: self.liveness_timeout.filter(|d| !d.is_zero()).map(|d| d / 2),
                max_queued_bytes: self.max_queued_bytes,
            },
            max_message_size: self.max_message_size,
            connect_timeout: self.connect_timeout,
        };
        let event_queue = crate::runtime::inbox::capacity_for(self.event_queue_bytes, self.max_message_size);
        (core, dial, event_queue)
    }
}
