//! Command-line options.

use std::time::Duration;

use krmx::{ClientConfig, QueryRequirement, ReconnectPolicy, ServerConfig};

pub struct ServeArgs {
    pub port: u16,
    pub relay: bool,
    pub config: ServerConfig,
}

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a str, String> {
    it.next().map(String::as_str).ok_or_else(|| format!("{flag} needs a value"))
}

fn number<T: std::str::FromStr>(text: &str, flag: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("{flag}: {text:?} is not a valid number"))
}

impl ServeArgs {
    pub fn parse(args: &[String]) -> Result<ServeArgs, String> {
        let mut parsed = ServeArgs { port: 8082, relay: false, config: ServerConfig::default() };
        let config = &mut parsed.config;
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "--host" => config.host = value(&mut it, flag)?.to_string(),
                "--port" => parsed.port = number(value(&mut it, flag)?, flag)?,
                "--path" => config.path = Some(value(&mut it, flag)?.to_string()),
                "--query" => {
                    let spec = value(&mut it, flag)?;
                    config.query.push(match spec.split_once('=') {
                        Some((name, v)) => (name.to_string(), QueryRequirement::Equals(v.to_string())),
                        None => (spec.to_string(), QueryRequirement::Present),
                    });
                }
                "--no-query" => config.query.push((value(&mut it, flag)?.to_string(), QueryRequirement::Absent)),
                "--no-new-users" => config.accept_new_users = false,
                "--auth" => config.authenticate = true,
                "--auth-timeout-ms" => {
                    config.auth_timeout = Duration::from_millis(number(value(&mut it, flag)?, flag)?)
                }
                "--ping-interval-ms" => {
                    let ms: u64 = number(value(&mut it, flag)?, flag)?;
                    config.ping_interval = (ms > 0).then(|| Duration::from_millis(ms));
                }
                "--protocol-version" => config.protocol_version = value(&mut it, flag)?.to_string(),
                "--max-message-bytes" => config.max_message_size = number(value(&mut it, flag)?, flag)?,
                "--max-queued-bytes" => config.max_queued_bytes = number(value(&mut it, flag)?, flag)?,
                "--handshake-timeout-ms" => {
                    config.handshake_timeout = Duration::from_millis(number(value(&mut it, flag)?, flag)?)
                }
                "--max-connections" => config.max_connections = number(value(&mut it, flag)?, flag)?,
                "--max-connections-per-address" => {
                    let n: usize = number(value(&mut it, flag)?, flag)?;
                    config.max_connections_per_address = (n > 0).then_some(n);
                }
                "--max-users" => config.max_users = number(value(&mut it, flag)?, flag)?,
                "--link-timeout-ms" => {
                    let ms: u64 = number(value(&mut it, flag)?, flag)?;
                    config.link_timeout = (ms > 0).then(|| Duration::from_millis(ms));
                }
                "--relay" => parsed.relay = true,
                "--echo" => config.echo = true,
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        Ok(parsed)
    }
}

pub struct ConnectArgs {
    pub url: String,
    /// Link at once after the first connect.
    pub username: Option<String>,
    pub auth: Option<String>,
    pub config: ClientConfig,
}

/// The reconnect policy, turned on (with the defaults) if it was off: every reconnect option implies
/// `--reconnect`.
fn policy(config: &mut ClientConfig) -> &mut ReconnectPolicy {
    config.reconnect.get_or_insert_with(ReconnectPolicy::default)
}

impl ConnectArgs {
    pub fn parse(args: &[String]) -> Result<ConnectArgs, String> {
        let mut url = None;
        let mut username = None;
        let mut auth = None;
        let mut config = ClientConfig::default();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "--username" => username = Some(value(&mut it, flag)?.to_string()),
                "--auth" => auth = Some(value(&mut it, flag)?.to_string()),
                "--protocol-version" => config.protocol_version = value(&mut it, flag)?.to_string(),
                "--reconnect" => {
                    policy(&mut config);
                }
                "--reconnect-min-ms" => policy(&mut config).min_delay = Duration::from_millis(number(value(&mut it, flag)?, flag)?),
                "--reconnect-max-ms" => policy(&mut config).max_delay = Duration::from_millis(number(value(&mut it, flag)?, flag)?),
                "--reconnect-attempts" => policy(&mut config).max_attempts = number(value(&mut it, flag)?, flag)?,
                "--liveness-ms" => {
                    let ms: u64 = number(value(&mut it, flag)?, flag)?;
                    config.liveness_timeout = (ms > 0).then(|| Duration::from_millis(ms));
                }
                "--connect-timeout-ms" => {
                    let ms: u64 = number(value(&mut it, flag)?, flag)?;
                    if ms == 0 {
                        return Err(format!("{flag} must be more than 0"));
                    }
                    config.connect_timeout = Duration::from_millis(ms);
                }
                "--max-message-bytes" => config.max_message_size = number(value(&mut it, flag)?, flag)?,
                other if other.starts_with('-') => return Err(format!("unknown option {other:?}")),
                other => {
                    if url.is_some() {
                        return Err(format!("unexpected argument {other:?}"));
                    }
                    krmx::runtime::dialer::check_url(other)?;
                    url = Some(other.to_string());
                }
            }
        }
        let url = url.ok_or("connect needs a URL (ws://host:port/path)")?;
        Ok(ConnectArgs { url, username, auth, config })
    }
}
