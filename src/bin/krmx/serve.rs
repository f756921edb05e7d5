//! `krmx serve`: a Krmx server driven by JSON-line commands on stdin, reporting JSON-line events on
//! stdout. Built on the public Rust API, the same engine the C API exposes.

use krmx::{Message, Server, ServerEvent};
use serde_json::Value;

use crate::args::ServeArgs;
use crate::commands::{Command, Commands};
use crate::output;

pub fn run(args: ServeArgs) -> i32 {
    let host = args.config.host.clone();
    let server = Server::new(args.config);
    let commands = Commands::new(server.waker());
    if let Err(e) = server.listen(args.port) {
        eprintln!("krmx: {e}");
        output::error(&e);
        return 1;
    }
    if let Some(port) = server.port() {
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        eprintln!("krmx: serving Krmx on ws://{host}:{port} (stop with Ctrl-C)");
    }
    commands.read_stdin();

    loop {
        if let Some(event) = server.poll(None) {
            output::print(output::server_event(&event));
            match event {
                ServerEvent::Close => return 0,
                ServerEvent::Message { message, .. } if args.relay => {
                    if let Err(e) = server.broadcast(&message, None) {
                        output::error(e);
                    }
                }
                _ => {}
            }
        }
        while let Some(command) = commands.try_next() {
            match command {
                Command::Line(line) => execute(&server, &line),
                Command::Terminate => close(&server),
            }
        }
    }
}

fn close(server: &Server) {
    if let Err(e) = server.close() {
        output::error(e);
    }
}

fn execute(server: &Server, line: &str) {
    if let Err(e) = try_execute(server, line) {
        output::error(e);
    }
}

fn try_execute(server: &Server, line: &str) -> Result<(), String> {
    let command: Value = serde_json::from_str(line).map_err(|e| format!("command is not JSON: {e}"))?;
    let cmd = command.get("cmd").and_then(Value::as_str).ok_or("command has no string \"cmd\"")?;
    let text = |key: &str| -> Result<&str, String> {
        command.get(key).and_then(Value::as_str).ok_or_else(|| format!("{cmd}: \"{key}\" must be a string"))
    };
    let message = || -> Result<Message, String> {
        let value = command.get("message").cloned().ok_or_else(|| format!("{cmd}: \"message\" is missing"))?;
        Message::from_value(value).ok_or_else(|| format!("{cmd}: \"message\" must be an object with a string \"type\""))
    };
    match cmd {
        "send" => server.send(text("username")?, &message()?).map_err(|e| e.to_string()),
        "broadcast" => {
            let skip = match command.get("skip") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.as_str()),
                Some(_) => return Err("broadcast: \"skip\" must be a string".into()),
            };
            server.broadcast(&message()?, skip).map_err(|e| e.to_string())
        }
        "join" => server.join(text("username")?).map_err(|e| e.to_string()),
        "kick" => server.kick(text("username")?).map_err(|e| e.to_string()),
        "unlink" => server.unlink(text("username")?).map_err(|e| e.to_string()),
        "users" => {
            output::print(output::users(&server.users()));
            Ok(())
        }
        "accept" | "reject" => {
            let id = command.get("id").and_then(Value::as_u64).ok_or_else(|| format!("{cmd}: \"id\" must be a number"))?;
            let decision = if cmd == "accept" {
                Ok(())
            } else {
                Err(command.get("reason").and_then(Value::as_str).map(str::to_string))
            };
            server.authenticate(id, decision).map_err(|e| e.to_string())
        }
        "close" => server.close().map_err(|e| e.to_string()),
        other => Err(format!("unknown command {other:?}")),
    }
}
