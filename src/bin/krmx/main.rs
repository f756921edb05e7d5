//! `krmx`: the Krmx server and client on the command line, scriptable in JSON lines.

mod args;
mod commands;
mod connect;
mod output;
mod serve;

const USAGE: &str = "\
usage: krmx serve [options]        run a Krmx server (events on stdout, commands on stdin, JSON lines)
       krmx connect URL [options]  run a Krmx client connected to URL (ws://host:port/path?query), likewise

serve options:
  --host ADDR               address to listen on (default 127.0.0.1)
  --port N                  port to listen on (default 8082; 0 = any free port)
  --path P                  only accept WebSocket connections to this path
  --query NAME[=VALUE]      require a query parameter (present, or equal to VALUE); repeatable
  --no-query NAME           require a query parameter to be absent; repeatable
  --no-new-users            only users created with the join command may link
  --auth                    decide every link on stdin ({\"cmd\":\"accept\"|\"reject\",\"id\":N})
  --auth-timeout-ms N       how long a link may wait for that decision (default 10000)
  --ping-interval-ms N      ping every N ms, closing connections that miss one (default 15000; 0 = off)
  --protocol-version V      protocol version to speak (default 0.5.5)
  --max-message-bytes N     largest incoming message (default 1048576; larger closes with 1009)
  --max-queued-bytes N      most bytes queued for one connection before it is cut off (default 1048576)
  --handshake-timeout-ms N  how long a WebSocket handshake may take (default 10000)
  --max-connections N       most connections at once (default 10000; more are answered 503)
  --max-connections-per-address N  most connections at once from one address (default 0 = no cap)
  --max-users N             most users at once (default 10000; more are rejected \"server is full\")
  --link-timeout-ms N       close connections unlinked for this long (default 30000; 0 = never)
  --relay                   broadcast every custom message unchanged to every linked user
  --echo                    send every WebSocket message straight back instead of speaking Krmx
                            (for WebSocket conformance testing only)

connect options (commands: link, send, unlink, leave, users, disconnect; exits after the close
event, with 0 when it disconnected on request, else 1):
  --username U              link as U at once after connecting
  --auth A                  auth string sent with that link
  --protocol-version V      protocol version to link with (default 0.5.5)
  --reconnect               reconnect (and re-link) when the connection drops
  --reconnect-min-ms N      first reconnect backoff (default 250; implies --reconnect)
  --reconnect-max-ms N      largest reconnect backoff (default 10000; implies --reconnect)
  --reconnect-attempts N    give up after N attempts in a row (default 0 = never; implies --reconnect)
  --liveness-ms N           close when nothing arrives for N ms (default 10000; 0 = off)
  --connect-timeout-ms N    how long a connect may take (default 10000)
  --max-message-bytes N     largest incoming message (default 1048576)

  krmx --help | --version
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("serve") => match args::ServeArgs::parse(&args[1..]) {
            Ok(serve_args) => serve::run(serve_args),
            Err(e) => usage_error(&e),
        },
        Some("connect") => match args::ConnectArgs::parse(&args[1..]) {
            Ok(connect_args) => connect::run(connect_args),
            Err(e) => usage_error(&e),
        },
        Some("--version" | "-V") => {
            println!("krmx {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Some("--help" | "-h" | "help") => {
            print!("{USAGE}");
            0
        }
        Some(other) => usage_error(&format!("unknown command {other:?}")),
        None => usage_error("missing command"),
    };
    std::process::exit(code);
}

fn usage_error(message: &str) -> i32 {
    eprintln!("krmx: {message}\n\n{USAGE}");
    2
}
