//! `krmx connect`: a Krmx client driven by JSON-line commands on stdin, reporting JSON-line events
//! on stdout. Built on the public Rust API ([`krmx::Client`]), the same engine the C API exposes.

use krmx::{Client, ClientEvent, Message};
use serde_json::Value;

use crate::args::ConnectArgs;
use crate::commands::{Command, Commands};
use crate::output;

/// What the loop remembers between events.
struct Session {
    client: Client,
    /// The username of the last link asked for: the one an accept confirms (a re-link after a
    /// reconnect uses the same).
    username: Option<String>,
    /// The host asked to disconnect (command or signal): the close that follows is a success.
    disconnecting: bool,
}

pub fn run(args: ConnectArgs) -> i32 {
    let client = Client::new(args.config);
    let commands = Commands::new(client.waker());
    if let Err(e) = client.connect(&args.url) {
        // The URL was checked with the options; this is not expected.
        eprintln!("krmx: {e}");
        output::error(&e);
        return 2;
    }
    eprintln!("krmx: connecting to {} (stop with Ctrl-C)", args.url);
    commands.read_stdin();

    let mut session = Session { client, username: None, disconnecting: false };
    let mut link_at_once = args.username.map(|username| (username, args.auth));
    loop {
        if let Some(event) = session.client.poll(None) {
            output::print(output::client_event(&event, session.username.as_deref()));
            match event {
                ClientEvent::Connect => {
                    // Only after the first connect: a reconnect re-links by itself.
                    if let Some((username, auth)) = link_at_once.take() {
                        session.execute_link(&username, auth.as_deref());
                    }
                }
                ClientEvent::Close { .. } => return if session.disconnecting { 0 } else { 1 },
                _ => {}
            }
        }
        while let Some(command) = commands.try_next() {
            match command {
                Command::Line(line) => {
                    if let Err(e) = session.execute(&line) {
                        output::error(e);
                    }
                }
                Command::Terminate => {
                    if let Err(e) = session.disconnect() {
                        output::error(e);
                    }
                }
            }
        }
    }
}

impl Session {
    fn execute_link(&mut self, username: &str, auth: Option<&str>) {
        if let Err(e) = self.link(username, auth) {
            output::error(e);
        }
    }

    fn link(&mut self, username: &str, auth: Option<&str>) -> Result<(), String> {
        self.client.link(username, auth).map_err(|e| e.to_string())?;
        self.username = Some(username.to_string());
        Ok(())
    }

    fn disconnect(&mut self) -> Result<(), String> {
        self.client.disconnect().map_err(|e| e.to_string())?;
        self.disconnecting = true;
        Ok(())
    }

    fn execute(&mut self, line: &str) -> Result<(), String> {
        let command: Value = serde_json::from_str(line).map_err(|e| format!("command is not JSON: {e}"))?;
        let cmd = command.get("cmd").and_then(Value::as_str).ok_or("command has no string \"cmd\"")?;
        match cmd {
            "link" => {
                let username = command
                    .get("username")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{cmd}: \"username\" must be a string"))?;
                let auth = match command.get("auth") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(auth)) => Some(auth.as_str()),
                    Some(_) => return Err(format!("{cmd}: \"auth\" must be a string")),
                };
                self.link(username, auth)
            }
            "send" => {
                let value = command.get("message").cloned().ok_or_else(|| format!("{cmd}: \"message\" is missing"))?;
                let message = Message::from_value(value)
                    .ok_or_else(|| format!("{cmd}: \"message\" must be an object with a string \"type\""))?;
                self.client.send(&message).map_err(|e| e.to_string())
            }
            "unlink" => self.client.unlink().map_err(|e| e.to_string()),
            "leave" => self.client.leave().map_err(|e| e.to_string()),
            "users" => {
                output::print(output::users(&self.client.users()));
                Ok(())
            }
            "disconnect" => self.disconnect(),
            other => Err(format!("unknown command {other:?}")),
        }
    }
}
