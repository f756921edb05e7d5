//! Command-line options: a scenario name, then `--name value` pairs.

use std::collections::HashMap;

pub struct Args {
    pub scenario: String,
    pub label: Option<String>,
    options: HashMap<String, String>,
}

impl Args {
    pub fn parse(mut words: impl Iterator<Item = String>) -> Result<Args, String> {
        let scenario = words.next().ok_or("no scenario")?;
        let mut options = HashMap::new();
        while let Some(word) = words.next() {
            let name = word.strip_prefix("--").ok_or_else(|| format!("unexpected {word:?}"))?;
            let value = words.next().ok_or_else(|| format!("--{name} needs a value"))?;
            options.insert(name.to_string(), value);
        }
        let label = options.remove("label");
        Ok(Args { scenario, label, options })
    }

    pub fn url(&self) -> Result<String, String> {
        self.options.get("url").cloned().ok_or_else(|| "--url is required".to_string())
    }

    /// A numeric option, or `default` when absent.
    pub fn number(&self, name: &str, default: u64) -> Result<u64, String> {
        match self.options.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{name} must be a whole number, not {v:?}")),
        }
    }

    pub fn server_pid(&self) -> Result<Option<u32>, String> {
        match self.options.get("server-pid") {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| format!("--server-pid must be a process id, not {v:?}")),
        }
    }
}
