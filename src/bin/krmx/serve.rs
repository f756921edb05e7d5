//! `krmx serve`: a Krmx server driven by JSON-line commands on stdin, reporting JSON-line events on
//! stdout. Built on the public Rust API, the same engine the C API exposes.

use std::io::BufRead;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;
use krmx::{Message, Server, ServerEvent};
use serde_json::Value;

use crate::args::ServeArgs;
use crate::output;
use crate::signals;

/// A line of stdin, or a termination signal.
enum Command {
    Line(String),
    Terminate,
}

pub fn run(args: ServeArgs) -> i32 {
    let (commands_tx, commands) = crossbeam_channel::unbounded::<Command>();
    let signal_count = Arc::new(AtomicUsize::new(0));
    let host = args.config.host.clone();
    let server = Arc::new(Server::new(args.config));
    {
        let commands_tx = commands_tx.clone();
        let waker = server.waker();
        let signal_count = signal_count.clone();
        signals::on_termination(Arc::new(move || {
            // A second signal while closing means: stop now.
            if signal_count.fetch_add(1, Ordering::SeqCst) > 0 {
                std::process::exit(130);
            }
            let _ = commands_tx.send(Command::Terminate);
            waker.wake();
        }));
    }
    if let Err(e) = server.listen(args.port) {
        eprintln!("krmx: {e}");
        output::error(&e);
        return 1;
    }
    if let Some(port) = server.port() {
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        eprintln!("krmx: serving Krmx on ws://{host}:{port} (stop with Ctrl-C)");
    }
    spawn_stdin_reader(commands_tx, server.waker());

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
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Line(line) => execute(&server, &line),
                Command::Terminate => close(&server),
            }
        }
    }
}

/// Reads stdin on its own thread. End of input does not stop the server.
fn spawn_stdin_reader(commands: Sender<Command>, waker: krmx::ServerWaker) {
    std::thread::Builder::new()
        .name("krmx-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if line.trim().is_empty() {
                    continue;
                }
                if commands.send(Command::Line(line)).is_err() {
                    break;
                }
                waker.wake();
            }
        })
        .expect("cannot start the stdin thread");
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
