//! Everything a server can be configured with, and the defaults a public game server can live with.

use std::time::Duration;

use crate::proto::requirements::{ConnectionRequirements, QueryRequirement};
use crate::proto::server::{ServerCoreConfig, UsernameRule};
use crate::proto::version::DEFAULT_PROTOCOL_VERSION;
use crate::runtime::connection::ConnectionSettings;
use crate::runtime::listener::ListenerSettings;

/// How a [`crate::Server`] behaves. Start from `ServerConfig::default()` and change what you need.
pub struct ServerConfig {
    /// The address to listen on. Default `127.0.0.1`; `0.0.0.0` serves every interface.
    pub host: String,
    /// Only WebSocket connections to this path are accepted (`None`: any path).
    pub path: Option<String>,
    /// Query parameters a connection's URL must have (or must not have).
    pub query: Vec<(String, QueryRequirement)>,
    /// When false, only users created by `join` may link. Default true.
    pub accept_new_users: bool,
    /// When true, the host decides every link through `Authenticate` events. Default false.
    pub authenticate: bool,
    /// How long the host may take to decide a link. Default 10 s.
    pub auth_timeout: Duration,
    /// How often connections are pinged; one that misses a ping is closed. Default 15 s; `None`: off.
    pub ping_interval: Option<Duration>,
    /// The protocol version advertised; clients of the same major.minor may link. Default `0.5.5`.
    pub protocol_version: String,
    /// Largest incoming message in bytes; a larger one closes its connection (code 1009). Default 1 MiB.
    pub max_message_size: usize,
    /// Most bytes waiting to be written to one connection; past it the connection is closed as a
    /// slow reader. Default 1 MiB.
    pub max_queued_bytes: usize,
    /// A peer must complete its WebSocket handshake within this time. Default 10 s.
    pub handshake_timeout: Duration,
    /// Most bytes of received messages waiting for the host to poll, each counted at four times
    /// its size (it waits parsed); past it, sockets are no longer read until the host catches up.
    /// Default 16 MiB; never less than one largest message.
    pub event_queue_bytes: usize,
    /// Replaces the default username rule.
    pub username_rule: Option<UsernameRule>,
    /// Most connections open at once, counting those still in their handshake; more are
    /// answered `503 Service Unavailable` and closed. Default 10000.
    pub max_connections: usize,
    /// Most connections open at once from one IP address, the same way. Default `None`: no cap
    /// (players behind one NAT share an address).
    pub max_connections_per_address: Option<usize>,
    /// Most users known at once, linked or not; a link that would add one more is rejected with
    /// `server is full`, and `join` fails. Default 10000.
    pub max_users: usize,
    /// A connection that stays unlinked this long (since it opened, or since its user was
    /// unlinked) is closed with the reason `link timeout`. Default 30 s; `None`: never.
    pub link_timeout: Option<Duration>,
    /// Echo every WebSocket message straight back instead of speaking Krmx: for testing the
    /// WebSocket layer with a conformance suite only. Default false.
    pub echo: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".to_string(),
            path: None,
            query: Vec::new(),
            accept_new_users: true,
            authenticate: false,
            auth_timeout: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(15)),
            protocol_version: DEFAULT_PROTOCOL_VERSION.to_string(),
            max_message_size: 1 << 20,
            max_queued_bytes: 1 << 20,
            handshake_timeout: Duration::from_secs(10),
            event_queue_bytes: 16 << 20,
            username_rule: None,
            max_connections: 10_000,
            max_connections_per_address: None,
            max_users: 10_000,
            link_timeout: Some(Duration::from_secs(30)),
            echo: false,
        }
    }
}

impl ServerConfig {
    /// Splits the configuration into the protocol's part and the I/O's part.
    pub(crate) fn split(self) -> (ServerCoreConfig, ListenerSettings, usize) {
        let core = ServerCoreConfig {
            protocol_version: self.protocol_version,
            accept_new_users: self.accept_new_users,
            authenticate: self.authenticate,
            auth_timeout: self.auth_timeout,
            username_rule: self.username_rule,
            max_users: self.max_users,
            link_timeout: self.link_timeout.filter(|d| !d.is_zero()),
        };
        let listener = ListenerSettings {
            host: self.host,
            port: 0,
            requirements: ConnectionRequirements { path: self.path, query: self.query },
            connection: ConnectionSettings {
                ping_interval: self.ping_interval.filter(|d| !d.is_zero()),
                max_queued_bytes: self.max_queued_bytes,
            },
            max_message_size: self.max_message_size,
            handshake_timeout: self.handshake_timeout,
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            echo: self.echo,
        };
        // The queue must hold at least one largest message.
        let event_queue = crate::runtime::inbox::capacity_for(self.event_queue_bytes, self.max_message_size);
        (core, listener, event_queue)
    }
}
