//! Protocol version compatibility.

/// The protocol version our server advertises and our client sends by default: the newest
/// `@krmx/server` on the npm registry, which `@krmx/client` 0.5.4 links to.
pub const DEFAULT_PROTOCOL_VERSION: &str = "0.5.5";

/// The server's version without its patch number (`0.5.5` → `0.5`).
pub fn major_minor(version: &str) -> &str {
    match version.rfind('.') {
        Some(i) => &version[..i],
        None => version,
    }
}

/// `None` when the client may link, else the exact rejection reason. Like the reference, the
/// client's version must start with the server's `major.minor`; the patch may differ.
pub fn check_client_version(server_version: &str, client_version: &str) -> Option<String> {
    let server = major_minor(server_version);
    if client_version.starts_with(server) {
        None
    } else {
        Some(format!("krmx server version mismatch (server={server}.*,client={client_version})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_may_differ_minor_may_not() {
        for (server, client, expected) in [
            ("0.5.5", "0.5.4", None),
            ("0.5.5", "0.5.5", None),
            ("0.5.5", "0.5.0-beta", None),
            ("0.5.5", "0.4.1", Some("krmx server version mismatch (server=0.5.*,client=0.4.1)")),
            ("0.6.0", "0.5.4", Some("krmx server version mismatch (server=0.6.*,client=0.5.4)")),
            ("1.2.3", "", Some("krmx server version mismatch (server=1.2.*,client=)")),
        ] {
            assert_eq!(check_client_version(server, client).as_deref(), expected, "{server} vs {client}");
        }
    }
}
