//! Optional connection requirements checked on the WebSocket handshake (PROTOCOL.md step 11):
//! a path, and query parameters that must be present, absent, or equal to a value.

/// What one query parameter must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryRequirement {
    Present,
    Absent,
    Equals(String),
}

/// The requirements a connection's request target must meet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionRequirements {
    /// The WebSocket path (`/game`); `None` accepts any path. A missing leading `/` is implied.
    pub path: Option<String>,
    pub query: Vec<(String, QueryRequirement)>,
}

/// Why a request target was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequirementFailure {
    WrongPath,
    QueryParameter(String),
}

impl ConnectionRequirements {
    /// Checks a request target such as `/game?krmx=1&x=%20y`.
    pub fn check(&self, target: &str) -> Result<(), RequirementFailure> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if let Some(required) = &self.path {
            let required = required.strip_prefix('/').unwrap_or(required);
            if path.strip_prefix('/').unwrap_or(path) != required {
                return Err(RequirementFailure::WrongPath);
            }
        }
        let params: Vec<(String, String)> = parse_query(query);
        for (name, requirement) in &self.query {
            let value = params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
            let ok = match requirement {
                QueryRequirement::Present => value.is_some(),
                QueryRequirement::Absent => value.is_none(),
                QueryRequirement::Equals(expected) => value == Some(expected.as_str()),
            };
            if !ok {
                return Err(RequirementFailure::QueryParameter(name.clone()));
            }
        }
        Ok(())
    }
}

/// `application/x-www-form-urlencoded` pairs, as `URLSearchParams` reads them.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use QueryRequirement::*;

    #[test]
    fn path_and_query_requirements() {
        let requirements = ConnectionRequirements {
            path: Some("game".into()),
            query: vec![
                ("krmx".into(), Equals("my server".into())),
                ("token".into(), Present),
                ("debug".into(), Absent),
            ],
        };
        for (target, expected) in [
            ("/game?krmx=my%20server&token=", Ok(())),
            ("/game?token=a&krmx=my+server", Ok(())),
            ("/game", Err(RequirementFailure::QueryParameter("krmx".into()))),
            ("/game?krmx=other&token=1", Err(RequirementFailure::QueryParameter("krmx".into()))),
            ("/game?krmx=my%20server", Err(RequirementFailure::QueryParameter("token".into()))),
            ("/game?krmx=my%20server&token=1&debug", Err(RequirementFailure::QueryParameter("debug".into()))),
            ("/?krmx=my%20server&token=1", Err(RequirementFailure::WrongPath)),
            ("/gamex?krmx=my%20server&token=1", Err(RequirementFailure::WrongPath)),
        ] {
            assert_eq!(requirements.check(target), expected, "{target}");
        }
        assert_eq!(ConnectionRequirements::default().check("/anything?x=1"), Ok(()));
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%41%42"), "AB");
        assert_eq!(percent_decode("%"), "%");
    }
}
