//! Every exported function, misused: NULL for each pointer argument, a freed handle, a handle of
//! the other kind, strings that are not UTF-8, payloads that are not JSON. Each gives its exact
//! result code and a `krmx_last_error()` that names the function and the argument, and none
//! changes anything (the handles stay as they were).
//!
//! The table below is checked against `include/krmx.h`: a function declared there without an
//! entry, or an entry for a function not declared there, fails the test; so does an entry that
//! does not misuse every pointer argument of its declaration (NULL, and for handles: freed and of
//! the other kind; for strings: not UTF-8; for payloads: not JSON).
//!
//! Also here: calls from several threads at once (the header allows any thread), a free on one
//! thread while another waits in a poll, and the last error being per thread.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_char, CStr};
use std::ptr;
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::c_build::manifest_dir;
use common::ffi::client::Client;
use common::ffi::events::render_server;
use common::ffi::server::{new_server, server_users};
use common::ffi::{c, last_error, users};
use common::TIMEOUT;
use krmx::ffi::client::*;
use krmx::ffi::event::KrmxEvent;
use krmx::ffi::krmx_version;
use krmx::ffi::result::{krmx_last_error, krmx_result_name, KrmxResult, KrmxResult::*};
use krmx::ffi::server::*;

use Misuse::*;

/// The tests of this file run one at a time: the freed-handle cases need that no other test
/// makes a handle at a freed handle's address meanwhile.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Not UTF-8 (and NUL-terminated).
const NOT_UTF8: &[u8] = b"\xff\xfe\0";

fn not_utf8() -> *const c_char {
    NOT_UTF8.as_ptr().cast()
}

// ---------------------------------------------------------------------------------------------
// What the header declares.
// ---------------------------------------------------------------------------------------------

/// One parameter of a declared function: its C type and its name.
#[derive(Debug)]
struct Param {
    ty: String,
    name: String,
}

impl Param {
    fn is_pointer(&self) -> bool {
        self.ty.contains('*')
    }
    fn is_handle(&self) -> bool {
        let ty = self.ty.trim_start_matches("const ");
        ty == "struct KrmxServer *" || ty == "struct KrmxClient *"
    }
    fn is_string(&self) -> bool {
        self.ty == "const char *"
    }
}

/// Every `krmx_*` function declared in `include/krmx.h`, with its parameters.
fn declared_functions() -> BTreeMap<String, Vec<Param>> {
    let header = std::fs::read_to_string(manifest_dir().join("include/krmx.h")).unwrap();
    let mut code: String = header.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    while let Some(start) = code.find("/*") {
        let end = code[start..].find("*/").map(|e| start + e + 2).expect("a closed comment");
        code.replace_range(start..end, " ");
    }
    let mut functions = BTreeMap::new();
    for statement in code.split(';') {
        let flat = statement.split_whitespace().collect::<Vec<_>>().join(" ");
        let Some(start) = ["KrmxResult krmx_", "const char *krmx_"].iter().filter_map(|p| flat.rfind(p)).max() else {
            continue;
        };
        let declaration = &flat[start..];
        let open = declaration.find('(').unwrap();
        assert!(declaration.ends_with(')'), "not a declaration: {declaration}");
        let name = declaration[..open].rsplit([' ', '*']).next().unwrap().to_string();
        let params = declaration[open + 1..declaration.len() - 1]
            .split(',')
            .map(str::trim)
            .filter(|p| *p != "void")
            .map(|p| {
                let split = p.rfind(|ch: char| !(ch.is_alphanumeric() || ch == '_')).unwrap() + 1;
                Param { ty: normalize_type(&p[..split]), name: p[split..].to_string() }
            })
            .collect();
        assert!(functions.insert(name.clone(), params).is_none(), "{name} declared twice");
    }
    functions
}

/// A parameter's type with one space before its stars: `const char *`, `struct KrmxServer **`.
fn normalize_type(ty: &str) -> String {
    let ty = ty.trim();
    let stars = ty.chars().rev().take_while(|&ch| ch == '*').count();
    if stars == 0 {
        return ty.to_string();
    }
    format!("{} {}", ty[..ty.len() - stars].trim_end(), "*".repeat(stars))
}

// ---------------------------------------------------------------------------------------------
// The handles the misuse is tried on.
// ---------------------------------------------------------------------------------------------

/// A listening server with one linked user (alice, the client), and two freed handles.
struct Fixture {
    server: *mut KrmxServer,
    client: *mut KrmxClient,
    freed_server: *mut KrmxServer,
    freed_client: *mut KrmxClient,
    /// The client helper, which frees the client when dropped.
    alice: Client,
}

impl Fixture {
    fn new() -> Fixture {
        let server = new_server(|_| {});
        assert_eq!(unsafe { krmx_server_listen(server, 0) }, KRMX_OK);
        let mut port = 0u16;
        assert_eq!(unsafe { krmx_server_port(server, &mut port) }, KRMX_OK);
        let mut alice = Client::new("alice", |_| {});
        alice.connect(&format!("ws://127.0.0.1:{port}"));
        let mut seen = Vec::new();
        assert_eq!(next_line(server, &mut alice, &mut seen), "connect");
        alice.link("alice", None);
        let lines: Vec<String> = (0..3).map(|_| next_line(server, &mut alice, &mut seen)).collect();
        assert_eq!(lines, ["accept", "join alice", "link alice"]);
        server_expect(server, &mut seen, &[&format!("listen {port}"), "join alice", "link alice"]);

        // Freed last, so that the live handles cannot sit at a freed handle's address.
        let freed_server = new_server(|_| {});
        assert_eq!(unsafe { krmx_server_free(freed_server) }, KRMX_OK);
        let mut freed_client = ptr::null_mut();
        assert_eq!(unsafe { krmx_client_new(ptr::null(), &mut freed_client) }, KRMX_OK);
        assert_eq!(unsafe { krmx_client_free(freed_client) }, KRMX_OK);
        Fixture { server, client: alice.raw, freed_server, freed_client, alice }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        unsafe { krmx_server_free(self.server) };
    }
}

/// Polls the server and `client` in turn until the client's next event; the server's events
/// meanwhile are appended to `seen`.
fn next_line(server: *mut KrmxServer, client: &mut Client, seen: &mut Vec<String>) -> String {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        let mut event = KrmxEvent::none();
        while unsafe { krmx_server_poll(server, &mut event, 0) } == KRMX_OK {
            seen.push(render_server(&event));
        }
        if let Some(ev) = client.poll(5) {
            return ev.line;
        }
    }
    panic!("{}: no event within {TIMEOUT:?}; the server saw {seen:?}", client.label);
}

/// The server's events, `seen` first, must be exactly `expected` (waiting for the missing ones).
fn server_expect(server: *mut KrmxServer, seen: &mut Vec<String>, expected: &[&str]) {
    let deadline = Instant::now() + TIMEOUT;
    while seen.len() < expected.len() && Instant::now() < deadline {
        let mut event = KrmxEvent::none();
        if unsafe { krmx_server_poll(server, &mut event, 10) } == KRMX_OK {
            seen.push(render_server(&event));
        }
    }
    assert_eq!(seen, expected);
    seen.clear();
}

// ---------------------------------------------------------------------------------------------
// The table: every function, its misuse, and what must come of it.
// ---------------------------------------------------------------------------------------------

/// What is wrong with the argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Misuse {
    Null,
    /// A handle freed before.
    Freed,
    /// A live handle of the other kind (a client given as a server).
    OtherKind,
    NotUtf8,
    NotJson,
    /// A value that is wrong here (out of range, unknown, or for the current status).
    Value,
}

type Call = Box<dyn Fn(&Fixture) -> KrmxResult>;

struct Case {
    arg: &'static str,
    misuse: Misuse,
    code: KrmxResult,
    /// What `krmx_last_error()` starts with after the call, after "FUNCTION: " (for errors).
    message: &'static str,
    call: Call,
}

fn case(arg: &'static str, misuse: Misuse, code: KrmxResult, message: &'static str, call: impl Fn(&Fixture) -> KrmxResult + 'static) -> Case {
    Case { arg, misuse, code, message, call: Box::new(call) }
}

/// NULL, freed and other-kind `server`, the other arguments valid.
fn server_handle(call: impl Fn(*mut KrmxServer) -> KrmxResult + Clone + 'static) -> Vec<Case> {
    let (null, freed, other) = (call.clone(), call.clone(), call);
    const NOT_LIVE: &str = "server is not a live krmx server handle";
    vec![
        case("server", Null, KRMX_ERR_NULL_ARGUMENT, "server must not be NULL", move |_| null(ptr::null_mut())),
        case("server", Freed, KRMX_ERR_INVALID_HANDLE, NOT_LIVE, move |f| freed(f.freed_server)),
        case("server", OtherKind, KRMX_ERR_INVALID_HANDLE, NOT_LIVE, move |f| other(f.client.cast())),
    ]
}

/// NULL, freed and other-kind `client`, the other arguments valid.
fn client_handle(call: impl Fn(*mut KrmxClient) -> KrmxResult + Clone + 'static) -> Vec<Case> {
    let (null, freed, other) = (call.clone(), call.clone(), call);
    const NOT_LIVE: &str = "client is not a live krmx client handle";
    vec![
        case("client", Null, KRMX_ERR_NULL_ARGUMENT, "client must not be NULL", move |_| null(ptr::null_mut())),
        case("client", Freed, KRMX_ERR_INVALID_HANDLE, NOT_LIVE, move |f| freed(f.freed_client)),
        case("client", OtherKind, KRMX_ERR_INVALID_HANDLE, NOT_LIVE, move |f| other(f.server.cast())),
    ]
}

/// A string argument NULL (required: an error) and not UTF-8.
fn required_string(arg: &'static str, null_message: &'static str, utf8_message: &'static str, call: impl Fn(&Fixture, *const c_char) -> KrmxResult + Clone + 'static) -> Vec<Case> {
    let (null, bad) = (call.clone(), call);
    vec![
        case(arg, Null, KRMX_ERR_NULL_ARGUMENT, null_message, move |f| null(f, ptr::null())),
        case(arg, NotUtf8, KRMX_ERR_INVALID_UTF8, utf8_message, move |f| bad(f, not_utf8())),
    ]
}

/// A string that is not a `const char *`-returning function's result: checks it, and stands for
/// KRMX_OK in the table.
fn returns(text: *const c_char, expected: &str) -> KrmxResult {
    assert!(!text.is_null());
    assert_eq!(unsafe { CStr::from_ptr(text) }.to_str().unwrap(), expected);
    KRMX_OK
}

fn status_of(client: *mut KrmxClient) -> KrmxClientStatus {
    let mut status = KrmxClientStatus::KRMX_CLIENT_STATUS_CLOSED;
    assert_eq!(unsafe { krmx_client_status(client, &mut status) }, KRMX_OK);
    status
}

fn table() -> BTreeMap<&'static str, Vec<Case>> {
    let mut t: BTreeMap<&'static str, Vec<Case>> = BTreeMap::new();
    let name = |s| c(s);

    // Library-wide.
    t.insert("krmx_version", vec![case("-", Value, KRMX_OK, "", |_| returns(krmx_version(), env!("CARGO_PKG_VERSION")))]);
    t.insert(
        "krmx_last_error",
        vec![case("-", Value, KRMX_OK, "", |_| thread::spawn(|| returns(krmx_last_error(), "")).join().unwrap())],
    );
    t.insert(
        "krmx_result_name",
        vec![case("result", Value, KRMX_OK, "", |_| {
            for unknown in [-1, 18, i32::MIN, i32::MAX] {
                returns(krmx_result_name(unknown), "KRMX_UNKNOWN_RESULT");
            }
            KRMX_OK
        })],
    );

    // The client.
    t.insert(
        "krmx_client_config_default",
        vec![case("config", Null, KRMX_ERR_NULL_ARGUMENT, "config must not be NULL", |_| unsafe {
            krmx_client_config_default(ptr::null_mut())
        })],
    );
    t.insert(
        "krmx_client_new",
        vec![
            case("config", Null, KRMX_OK, "", |_| unsafe {
                let mut out = ptr::null_mut();
                let result = krmx_client_new(ptr::null(), &mut out);
                assert!(!out.is_null());
                assert_eq!(krmx_client_free(out), KRMX_OK);
                result
            }),
            case("out", Null, KRMX_ERR_NULL_ARGUMENT, "out must not be NULL", |_| unsafe { krmx_client_new(ptr::null(), ptr::null_mut()) }),
            case("config.protocol_version", NotUtf8, KRMX_ERR_INVALID_UTF8, "config.protocol_version is not valid UTF-8", |_| unsafe {
                let mut config: KrmxClientConfig = std::mem::zeroed();
                assert_eq!(krmx_client_config_default(&mut config), KRMX_OK);
                config.protocol_version = not_utf8();
                let mut out = ptr::NonNull::dangling().as_ptr();
                let result = krmx_client_new(&config, &mut out);
                assert!(out.is_null(), "a failed new writes NULL");
                result
            }),
        ],
    );
    let mut connect = client_handle(|h| unsafe { krmx_client_connect(h, c("ws://127.0.0.1:1").as_ptr()) });
    connect.extend(required_string("url", "url must not be NULL", "url is not valid UTF-8", |f, url| unsafe { krmx_client_connect(f.client, url) }));
    connect.push(case("url", Value, KRMX_ERR_INVALID_ARGUMENT, "\"http://x\" is not a ws:// URL", |f| unsafe {
        krmx_client_connect(f.client, c("http://x").as_ptr())
    }));
    t.insert("krmx_client_connect", connect);

    let mut link = client_handle(move |h| unsafe { krmx_client_link(h, name("bob").as_ptr(), ptr::null()) });
    link.extend(required_string("username", "username must not be NULL", "username is not valid UTF-8", |f, username| unsafe {
        krmx_client_link(f.client, username, ptr::null())
    }));
    link.push(case("auth", Null, KRMX_ERR_WRONG_STATUS, "cannot link when the client is linked", |f| unsafe {
        krmx_client_link(f.client, c("bob").as_ptr(), ptr::null())
    }));
    link.push(case("auth", NotUtf8, KRMX_ERR_INVALID_UTF8, "auth is not valid UTF-8", |f| unsafe {
        krmx_client_link(f.client, c("bob").as_ptr(), not_utf8())
    }));
    t.insert("krmx_client_link", link);

    t.insert("krmx_client_unlink", client_handle(|h| unsafe { krmx_client_unlink(h) }));
    t.insert("krmx_client_leave", client_handle(|h| unsafe { krmx_client_leave(h) }));
    t.insert("krmx_client_disconnect", client_handle(|h| unsafe { krmx_client_disconnect(h) }));
    t.insert("krmx_client_wake", client_handle(|h| unsafe { krmx_client_wake(h) }));

    let mut send = client_handle(|h| unsafe { krmx_send(h, c("test/ping").as_ptr(), ptr::null()) });
    send.extend(required_string("message_type", "message_type must not be NULL", "message_type is not valid UTF-8", |f, kind| unsafe {
        krmx_send(f.client, kind, ptr::null())
    }));
    send.extend([
        // Allowed: a message without payload (the server sees it; checked at the end).
        case("payload_json", Null, KRMX_OK, "", |f| unsafe { krmx_send(f.client, c("test/ping").as_ptr(), ptr::null()) }),
        case("payload_json", NotUtf8, KRMX_ERR_INVALID_UTF8, "payload_json is not valid UTF-8", |f| unsafe {
            krmx_send(f.client, c("test/ping").as_ptr(), not_utf8())
        }),
        case("payload_json", NotJson, KRMX_ERR_INVALID_JSON, "payload_json is not valid JSON: ", |f| unsafe {
            krmx_send(f.client, c("test/ping").as_ptr(), c("{\"a\":").as_ptr())
        }),
        case("message_type", Value, KRMX_ERR_RESERVED_TYPE, "message type must not start with the reserved 'krmx/' prefix", |f| unsafe {
            krmx_send(f.client, c("krmx/link").as_ptr(), ptr::null())
        }),
    ]);
    t.insert("krmx_send", send);

    let mut poll = client_handle(|h| unsafe { krmx_client_poll(h, &mut KrmxEvent::none(), 0) });
    poll.push(case("event", Null, KRMX_ERR_NULL_ARGUMENT, "event must not be NULL", |f| unsafe { krmx_client_poll(f.client, ptr::null_mut(), 0) }));
    t.insert("krmx_client_poll", poll);

    let mut status = client_handle(|h| unsafe { krmx_client_status(h, &mut KrmxClientStatus::KRMX_CLIENT_STATUS_CLOSED) });
    status.push(case("status", Null, KRMX_ERR_NULL_ARGUMENT, "status must not be NULL", |f| unsafe { krmx_client_status(f.client, ptr::null_mut()) }));
    t.insert("krmx_client_status", status);

    let mut username = client_handle(|h| unsafe { krmx_client_username(h, [0 as c_char; 33].as_mut_ptr(), 33, ptr::null_mut()) });
    username.extend([
        case("username", Null, KRMX_ERR_NULL_ARGUMENT, "username must not be NULL", |f| unsafe {
            let mut len = 0usize;
            let result = krmx_client_username(f.client, ptr::null_mut(), 33, &mut len);
            assert_eq!(len, 5, "the length is written all the same");
            result
        }),
        case("username_len", Null, KRMX_OK, "", |f| unsafe {
            let mut buffer = [0 as c_char; 33];
            let result = krmx_client_username(f.client, buffer.as_mut_ptr(), 33, ptr::null_mut());
            assert_eq!(CStr::from_ptr(buffer.as_ptr()).to_str().unwrap(), "alice");
            result
        }),
        case("capacity", Value, KRMX_ERR_BUFFER_TOO_SMALL, "username of 5 bytes cannot hold 5 bytes and a NUL", |f| unsafe {
            let mut buffer = [7 as c_char; 5];
            let result = krmx_client_username(f.client, buffer.as_mut_ptr(), 5, ptr::null_mut());
            assert_eq!(buffer, [7; 5], "a buffer that is too small is left alone");
            result
        }),
    ]);
    t.insert("krmx_client_username", username);

    let mut count = client_handle(|h| unsafe { krmx_client_user_count(h, &mut 0usize) });
    count.push(case("count", Null, KRMX_ERR_NULL_ARGUMENT, "count must not be NULL", |f| unsafe { krmx_client_user_count(f.client, ptr::null_mut()) }));
    t.insert("krmx_client_user_count", count);

    let mut user = client_handle(|h| unsafe { krmx_client_user(h, 0, [0 as c_char; 33].as_mut_ptr(), 33, ptr::null_mut(), ptr::null_mut()) });
    user.extend(user_out_cases(|f, index, buffer, capacity, len, linked| unsafe { krmx_client_user(f.client, index, buffer, capacity, len, linked) }));
    t.insert("krmx_client_user", user);

    t.insert(
        "krmx_client_free",
        vec![
            case("client", Null, KRMX_OK, "", |_| unsafe { krmx_client_free(ptr::null_mut()) }),
            case("client", Freed, KRMX_ERR_INVALID_HANDLE, "client is not a live krmx client handle", |f| unsafe { krmx_client_free(f.freed_client) }),
            case("client", OtherKind, KRMX_ERR_INVALID_HANDLE, "client is not a live krmx client handle", |f| unsafe {
                krmx_client_free(f.server.cast())
            }),
        ],
    );

    // The server.
    t.insert(
        "krmx_server_config_default",
        vec![case("config", Null, KRMX_ERR_NULL_ARGUMENT, "config must not be NULL", |_| unsafe {
            krmx_server_config_default(ptr::null_mut())
        })],
    );
    t.insert("krmx_server_new", server_new_cases());

    let mut listen = server_handle(|h| unsafe { krmx_server_listen(h, 0) });
    listen.push(case("port", Value, KRMX_ERR_WRONG_STATUS, "cannot start listening when the server is listening", |f| unsafe { krmx_server_listen(f.server, 0) }));
    t.insert("krmx_server_listen", listen);

    let mut port = server_handle(|h| unsafe { krmx_server_port(h, &mut 0u16) });
    port.push(case("port", Null, KRMX_ERR_NULL_ARGUMENT, "port must not be NULL", |f| unsafe { krmx_server_port(f.server, ptr::null_mut()) }));
    t.insert("krmx_server_port", port);

    let mut poll = server_handle(|h| unsafe { krmx_server_poll(h, &mut KrmxEvent::none(), 0) });
    poll.push(case("event", Null, KRMX_ERR_NULL_ARGUMENT, "event must not be NULL", |f| unsafe { krmx_server_poll(f.server, ptr::null_mut(), 0) }));
    t.insert("krmx_server_poll", poll);

    t.insert("krmx_server_wake", server_handle(|h| unsafe { krmx_server_wake(h) }));

    let mut authenticate = server_handle(|h| unsafe { krmx_server_authenticate(h, 1, true, ptr::null()) });
    authenticate.extend([
        // Allowed: the default reason. The request is unknown all the same.
        case("reason", Null, KRMX_ERR_UNKNOWN_REQUEST, "authentication request 12345 is not pending", |f| unsafe {
            krmx_server_authenticate(f.server, 12345, false, ptr::null())
        }),
        case("reason", NotUtf8, KRMX_ERR_INVALID_UTF8, "reason is not valid UTF-8", |f| unsafe {
            krmx_server_authenticate(f.server, 12345, false, not_utf8())
        }),
    ]);
    t.insert("krmx_server_authenticate", authenticate);

    let mut send = server_handle(|h| unsafe { krmx_server_send(h, c("alice").as_ptr(), c("test/x").as_ptr(), ptr::null()) });
    send.extend(required_string("username", "username must not be NULL", "username is not valid UTF-8", |f, username| unsafe {
        krmx_server_send(f.server, username, c("test/x").as_ptr(), ptr::null())
    }));
    send.extend(required_string("message_type", "message_type must not be NULL", "message_type is not valid UTF-8", |f, kind| unsafe {
        krmx_server_send(f.server, c("alice").as_ptr(), kind, ptr::null())
    }));
    send.extend([
        case("payload_json", Null, KRMX_OK, "", |f| unsafe { krmx_server_send(f.server, c("alice").as_ptr(), c("test/sent").as_ptr(), ptr::null()) }),
        case("payload_json", NotUtf8, KRMX_ERR_INVALID_UTF8, "payload_json is not valid UTF-8", |f| unsafe {
            krmx_server_send(f.server, c("alice").as_ptr(), c("test/x").as_ptr(), not_utf8())
        }),
        case("payload_json", NotJson, KRMX_ERR_INVALID_JSON, "payload_json is not valid JSON: ", |f| unsafe {
            krmx_server_send(f.server, c("alice").as_ptr(), c("test/x").as_ptr(), c("undefined").as_ptr())
        }),
        case("username", Value, KRMX_ERR_UNKNOWN_USER, "user nobody does not exist", |f| unsafe {
            krmx_server_send(f.server, c("nobody").as_ptr(), c("test/x").as_ptr(), ptr::null())
        }),
        // Nested deeper than the JSON parser goes: refused, not a stack overflow.
        case("payload_json", NotJson, KRMX_ERR_INVALID_JSON, "payload_json is not valid JSON: recursion limit exceeded", |f| unsafe {
            let deep = c(&format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)));
            krmx_server_send(f.server, c("alice").as_ptr(), c("test/x").as_ptr(), deep.as_ptr())
        }),
    ]);
    t.insert("krmx_server_send", send);

    let mut broadcast = server_handle(|h| unsafe { krmx_server_broadcast(h, c("test/x").as_ptr(), ptr::null(), ptr::null()) });
    broadcast.extend(required_string("message_type", "message_type must not be NULL", "message_type is not valid UTF-8", |f, kind| unsafe {
        krmx_server_broadcast(f.server, kind, ptr::null(), ptr::null())
    }));
    broadcast.extend([
        case("payload_json", Null, KRMX_OK, "", |f| unsafe { krmx_server_broadcast(f.server, c("test/all").as_ptr(), ptr::null(), c("nobody").as_ptr()) }),
        case("payload_json", NotUtf8, KRMX_ERR_INVALID_UTF8, "payload_json is not valid UTF-8", |f| unsafe {
            krmx_server_broadcast(f.server, c("test/x").as_ptr(), not_utf8(), ptr::null())
        }),
        case("payload_json", NotJson, KRMX_ERR_INVALID_JSON, "payload_json is not valid JSON: ", |f| unsafe {
            krmx_server_broadcast(f.server, c("test/x").as_ptr(), c("{1:2}").as_ptr(), ptr::null())
        }),
        case("skip_username", Null, KRMX_OK, "", |f| unsafe { krmx_server_broadcast(f.server, c("test/all").as_ptr(), c("[1]").as_ptr(), ptr::null()) }),
        case("skip_username", NotUtf8, KRMX_ERR_INVALID_UTF8, "skip_username is not valid UTF-8", |f| unsafe {
            krmx_server_broadcast(f.server, c("test/x").as_ptr(), ptr::null(), not_utf8())
        }),
    ]);
    t.insert("krmx_server_broadcast", broadcast);

    for (function, call) in [
        ("krmx_server_join", krmx_server_join as unsafe extern "C" fn(*mut KrmxServer, *const c_char) -> KrmxResult),
        ("krmx_server_unlink", krmx_server_unlink),
        ("krmx_server_kick", krmx_server_kick),
    ] {
        let mut cases = server_handle(move |h| unsafe { call(h, c("carol").as_ptr()) });
        cases.extend(required_string("username", "username must not be NULL", "username is not valid UTF-8", move |f, username| unsafe {
            call(f.server, username)
        }));
        cases.push(match function {
            "krmx_server_join" => case("username", Value, KRMX_ERR_USER_EXISTS, "user alice already exists", move |f| unsafe { call(f.server, c("alice").as_ptr()) }),
            _ => case("username", Value, KRMX_ERR_UNKNOWN_USER, "user nobody does not exist", move |f| unsafe { call(f.server, c("nobody").as_ptr()) }),
        });
        t.insert(function, cases);
    }

    let mut count = server_handle(|h| unsafe { krmx_server_user_count(h, &mut 0usize) });
    count.push(case("count", Null, KRMX_ERR_NULL_ARGUMENT, "count must not be NULL", |f| unsafe { krmx_server_user_count(f.server, ptr::null_mut()) }));
    t.insert("krmx_server_user_count", count);

    let mut user = server_handle(|h| unsafe { krmx_server_user(h, 0, [0 as c_char; 33].as_mut_ptr(), 33, ptr::null_mut(), ptr::null_mut()) });
    user.extend(user_out_cases(|f, index, buffer, capacity, len, linked| unsafe { krmx_server_user(f.server, index, buffer, capacity, len, linked) }));
    t.insert("krmx_server_user", user);

    let mut status = server_handle(|h| unsafe { krmx_server_status(h, &mut KrmxServerStatus::KRMX_SERVER_STATUS_CLOSED) });
    status.push(case("status", Null, KRMX_ERR_NULL_ARGUMENT, "status must not be NULL", |f| unsafe { krmx_server_status(f.server, ptr::null_mut()) }));
    t.insert("krmx_server_status", status);

    t.insert("krmx_server_close", server_handle(|h| unsafe { krmx_server_close(h) }));
    t.insert(
        "krmx_server_free",
        vec![
            case("server", Null, KRMX_OK, "", |_| unsafe { krmx_server_free(ptr::null_mut()) }),
            case("server", Freed, KRMX_ERR_INVALID_HANDLE, "server is not a live krmx server handle", |f| unsafe { krmx_server_free(f.freed_server) }),
            case("server", OtherKind, KRMX_ERR_INVALID_HANDLE, "server is not a live krmx server handle", |f| unsafe {
                krmx_server_free(f.client.cast())
            }),
        ],
    );
    t
}

type UserCall = fn(&Fixture, usize, *mut c_char, usize, *mut usize, *mut bool) -> KrmxResult;

/// `krmx_server_user` and `krmx_client_user` alike: user 0 is alice, linked.
fn user_out_cases(call: UserCall) -> Vec<Case> {
    vec![
        case("username", Null, KRMX_ERR_NULL_ARGUMENT, "username must not be NULL", move |f| {
            let (mut len, mut linked) = (0usize, false);
            let result = call(f, 0, ptr::null_mut(), 33, &mut len, &mut linked);
            assert_eq!((len, linked), (5, true), "the length and linked are written all the same");
            result
        }),
        case("username_len", Null, KRMX_OK, "", move |f| {
            let mut buffer = [0 as c_char; 33];
            let mut linked = false;
            let result = call(f, 0, buffer.as_mut_ptr(), 33, ptr::null_mut(), &mut linked);
            assert_eq!(unsafe { CStr::from_ptr(buffer.as_ptr()) }.to_str().unwrap(), "alice");
            assert!(linked);
            result
        }),
        case("is_linked", Null, KRMX_OK, "", move |f| {
            let mut buffer = [0 as c_char; 33];
            let mut len = 0usize;
            let result = call(f, 0, buffer.as_mut_ptr(), 33, &mut len, ptr::null_mut());
            assert_eq!(len, 5);
            result
        }),
        case("index", Value, KRMX_ERR_INVALID_ARGUMENT, "there is no user at index 1", move |f| {
            call(f, 1, [0 as c_char; 33].as_mut_ptr(), 33, ptr::null_mut(), ptr::null_mut())
        }),
        case("capacity", Value, KRMX_ERR_BUFFER_TOO_SMALL, "username of 0 bytes cannot hold 5 bytes and a NUL", move |f| {
            call(f, 0, [0 as c_char; 1].as_mut_ptr(), 0, ptr::null_mut(), ptr::null_mut())
        }),
    ]
}

/// `krmx_server_new` with a config changed by `change`; a failed new must write NULL.
fn server_new_with(change: impl Fn(&mut KrmxServerConfig)) -> KrmxResult {
    let mut config: KrmxServerConfig = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { krmx_server_config_default(&mut config) }, KRMX_OK);
    change(&mut config);
    let mut out = ptr::NonNull::dangling().as_ptr();
    let result = unsafe { krmx_server_new(&config, &mut out) };
    if result == KRMX_OK {
        assert_eq!(unsafe { krmx_server_free(out) }, KRMX_OK);
    } else {
        assert!(out.is_null(), "a failed new writes NULL");
    }
    result
}

fn server_new_cases() -> Vec<Case> {
    let requirement = |name: *const c_char, kind: i32, value: *const c_char| KrmxQueryRequirement { name, kind, value };
    vec![
        case("config", Null, KRMX_OK, "", |_| unsafe {
            let mut out = ptr::null_mut();
            let result = krmx_server_new(ptr::null(), &mut out);
            assert_eq!(krmx_server_free(out), KRMX_OK);
            result
        }),
        case("out", Null, KRMX_ERR_NULL_ARGUMENT, "out must not be NULL", |_| unsafe { krmx_server_new(ptr::null(), ptr::null_mut()) }),
        case("config.host", NotUtf8, KRMX_ERR_INVALID_UTF8, "config.host is not valid UTF-8", |_| server_new_with(|c| c.host = not_utf8())),
        case("config.path", NotUtf8, KRMX_ERR_INVALID_UTF8, "config.path is not valid UTF-8", |_| server_new_with(|c| c.path = not_utf8())),
        case("config.query", Null, KRMX_ERR_NULL_ARGUMENT, "config.query (with query_len above 0) must not be NULL", |_| {
            server_new_with(|c| c.query_len = 1)
        }),
        case("config.query[].name", Null, KRMX_ERR_NULL_ARGUMENT, "config.query[].name must not be NULL", move |_| {
            let query = [requirement(ptr::null(), 0, ptr::null())];
            server_new_with(|c| (c.query, c.query_len) = (query.as_ptr(), 1))
        }),
        case("config.query[].value", Null, KRMX_ERR_NULL_ARGUMENT, "config.query[].value must not be NULL", move |_| {
            let name = c("token");
            let query = [requirement(name.as_ptr(), 2, ptr::null())];
            server_new_with(|c| (c.query, c.query_len) = (query.as_ptr(), 1))
        }),
        case("config.query[].kind", Value, KRMX_ERR_INVALID_ARGUMENT, "config.query[].kind 7 is not a KrmxQueryKind", move |_| {
            let name = c("token");
            let query = [requirement(name.as_ptr(), 7, ptr::null())];
            server_new_with(|c| (c.query, c.query_len) = (query.as_ptr(), 1))
        }),
        case("config.username_rule", Null, KRMX_OK, "", |_| server_new_with(|c| c.username_rule = None)),
        case("config.max_connections", Value, KRMX_ERR_INVALID_ARGUMENT, "config.max_connections and max_users must be above 0", |_| {
            server_new_with(|c| c.max_connections = 0)
        }),
        case("config.max_users", Value, KRMX_ERR_INVALID_ARGUMENT, "config.max_connections and max_users must be above 0", |_| {
            server_new_with(|c| c.max_users = 0)
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_table_covers_every_declared_function_and_every_pointer_argument() {
    let declared = declared_functions();
    assert!(declared.len() >= 35 && declared.contains_key("krmx_server_poll") && declared.contains_key("krmx_send"), "{:?}", declared.keys());
    let table = table();
    let in_header: BTreeSet<&str> = declared.keys().map(String::as_str).collect();
    let in_table: BTreeSet<&str> = table.keys().copied().collect();
    assert_eq!(
        in_header.difference(&in_table).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "declared in include/krmx.h without misuse cases in tests/ffi_surface.rs"
    );
    assert_eq!(in_table.difference(&in_header).collect::<Vec<_>>(), Vec::<&&str>::new(), "in the table, not in the header");

    let mut missing = Vec::new();
    for (function, params) in &declared {
        let tried: BTreeSet<(&str, Misuse)> = table[function.as_str()].iter().map(|case| (case.arg, case.misuse)).collect();
        for param in params {
            let mut needed = Vec::new();
            if param.is_pointer() {
                needed.push(Null);
            }
            if param.is_handle() {
                needed.extend([Freed, OtherKind]);
            }
            if param.is_string() {
                needed.push(NotUtf8);
            }
            if param.name == "payload_json" {
                needed.push(NotJson);
            }
            for misuse in needed {
                if !tried.contains(&(param.name.as_str(), misuse)) {
                    missing.push(format!("{function}({} {}): {misuse:?}", param.ty, param.name));
                }
            }
        }
    }
    assert!(missing.is_empty(), "misuse not tried:\n{}", missing.join("\n"));
}

#[test]
fn every_misuse_gives_its_code_and_a_message_naming_function_and_argument() {
    let _serial = serial();
    let mut fixture = Fixture::new();
    let mut tried = 0;
    for (function, cases) in table() {
        for case in cases {
            // A known error first, so that a stale message cannot pass for the case's.
            assert_eq!(unsafe { krmx_server_config_default(ptr::null_mut()) }, KRMX_ERR_NULL_ARGUMENT);
            let result = (case.call)(&fixture);
            let what = format!("{function} with {:?} {}", case.misuse, case.arg);
            assert_eq!(result, case.code, "{what}: {}", last_error());
            if !matches!(case.code, KRMX_OK | KRMX_NO_EVENT) {
                assert!(!case.message.is_empty(), "{what}: the table gives no message for an error");
                let expected = format!("{function}: {}", case.message);
                assert!(last_error().starts_with(&expected), "{what}: the last error {:?} should start with {expected:?}", last_error());
            }
            tried += 1;
        }
    }
    println!("{tried} misuse cases tried");

    // Nothing changed: alice is linked, the handles are live, and the allowed NULLs did their
    // job (a message without payload each way, broadcasts without skip or payload).
    let server = fixture.server;
    assert_eq!(server_users(server), users(&[("alice", true)]));
    assert_eq!(status_of(fixture.client), KrmxClientStatus::KRMX_CLIENT_STATUS_LINKED);
    let mut seen = Vec::new();
    let lines: Vec<String> = (0..3).map(|_| next_line(server, &mut fixture.alice, &mut seen)).collect();
    // In the table's order: krmx_server_broadcast, then krmx_server_send.
    assert_eq!(lines, ["message test/all (none)", "message test/all [1]", "message test/sent (none)"]);
    server_expect(server, &mut seen, &["message alice test/ping (none)"]);
    fixture.alice.expect_nothing(0);
}

/// The header: a handle's functions may be called from any thread; poll from one at a time.
/// Four threads call everything that is not a poll on one server and one linked client while a
/// fifth polls both; every result is one the call documents, never a crash or KRMX_ERR_PANIC.
#[test]
fn calls_from_several_threads_at_once_are_serialized() {
    let _serial = serial();
    let fixture = Fixture::new();
    let (server, client) = (fixture.server as usize, fixture.client as usize);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut events = (0usize, 0usize);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let mut event = KrmxEvent::none();
                match unsafe { krmx_server_poll(server as *mut KrmxServer, &mut event, 1) } {
                    KRMX_OK => events.0 += 1,
                    KRMX_NO_EVENT => {}
                    other => panic!("server poll: {other:?} {}", last_error()),
                }
                match unsafe { krmx_client_poll(client as *mut KrmxClient, &mut event, 1) } {
                    KRMX_OK => events.1 += 1,
                    KRMX_NO_EVENT => {}
                    other => panic!("client poll: {other:?} {}", last_error()),
                }
            }
            events
        })
    };
    const THREADS: usize = 4;
    const ROUNDS: usize = 300;
    let start = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let start = start.clone();
            thread::spawn(move || {
                let (server, client) = (server as *mut KrmxServer, client as *mut KrmxClient);
                let me = c(&format!("bot{t}"));
                start.wait();
                let mut codes: BTreeMap<&'static str, BTreeSet<i32>> = BTreeMap::new();
                let mut note = |call: &'static str, r: KrmxResult| codes.entry(call).or_default().insert(r as i32);
                for round in 0..ROUNDS {
                    unsafe {
                        let payload = c(&format!("{{\"t\":{t},\"round\":{round}}}"));
                        note("send", krmx_send(client, c("test/load").as_ptr(), payload.as_ptr()));
                        note("server_send", krmx_server_send(server, c("alice").as_ptr(), c("test/to").as_ptr(), payload.as_ptr()));
                        note("broadcast", krmx_server_broadcast(server, c("test/all").as_ptr(), ptr::null(), ptr::null()));
                        note("join", krmx_server_join(server, me.as_ptr()));
                        note("kick", krmx_server_kick(server, me.as_ptr()));
                        let (mut count, mut status) = (0usize, KrmxServerStatus::KRMX_SERVER_STATUS_CLOSED);
                        note("user_count", krmx_server_user_count(server, &mut count));
                        note("status", krmx_server_status(server, &mut status));
                        let mut buffer = [0 as c_char; 33];
                        note("user", krmx_server_user(server, 0, buffer.as_mut_ptr(), 33, ptr::null_mut(), ptr::null_mut()));
                        note("client_user", krmx_client_user(client, 0, buffer.as_mut_ptr(), 33, ptr::null_mut(), ptr::null_mut()));
                        note("wake", krmx_server_wake(server));
                        note("client_wake", krmx_client_wake(client));
                    }
                }
                codes
            })
        })
        .collect();
    let mut all: BTreeMap<&'static str, BTreeSet<i32>> = BTreeMap::new();
    for worker in workers {
        for (call, codes) in worker.join().expect("a worker thread panicked") {
            all.entry(call).or_default().extend(codes);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (server_events, client_events) = poller.join().expect("the polling thread panicked");
    let ok = KRMX_OK as i32;
    let allowed: BTreeMap<&str, Vec<i32>> = BTreeMap::from([
        ("send", vec![ok]),
        ("server_send", vec![ok]),
        ("broadcast", vec![ok]),
        // Each thread joins and kicks its own bot; only its own calls decide.
        ("join", vec![ok]),
        ("kick", vec![ok]),
        ("user_count", vec![ok]),
        ("status", vec![ok]),
        ("user", vec![ok]),
        // The client's table may be between rebuilds: it is what the client polled so far.
        ("client_user", vec![ok, KRMX_ERR_INVALID_ARGUMENT as i32]),
        ("wake", vec![ok]),
        ("client_wake", vec![ok]),
    ]);
    for (call, codes) in &all {
        let unexpected: Vec<String> = codes.iter().filter(|c| !allowed[call].contains(c)).map(|&c| format!("{c}")).collect();
        assert!(unexpected.is_empty(), "{call} returned {unexpected:?}");
    }
    assert_eq!(all.len(), allowed.len());
    assert!(server_events > 0 && client_events > 0, "both polled events: {server_events}, {client_events}");
    assert_eq!(server_users(fixture.server), users(&[("alice", true)]), "every bot was kicked again");
    println!("{THREADS} threads x {ROUNDS} rounds x 11 calls; the poller took {server_events} server and {client_events} client events");
}

/// Freeing a handle while another thread waits in its poll breaks the header's rule ("must not
/// be used again"), but must not crash: the waiting poll returns KRMX_NO_EVENT, the handle is
/// released when it does, and every later call is refused.
#[test]
fn a_free_on_one_thread_ends_a_poll_waiting_on_another() {
    let _serial = serial();
    for kind in ["server", "client"] {
        let (handle, free): (usize, Box<dyn Fn(usize) -> KrmxResult>) = match kind {
            "server" => (new_server(|_| {}) as usize, Box::new(|h| unsafe { krmx_server_free(h as *mut KrmxServer) })),
            _ => {
                let mut out = ptr::null_mut();
                assert_eq!(unsafe { krmx_client_new(ptr::null(), &mut out) }, KRMX_OK);
                (out as usize, Box::new(|h| unsafe { krmx_client_free(h as *mut KrmxClient) }))
            }
        };
        let waiting = thread::spawn(move || {
            let mut event = KrmxEvent::none();
            match kind {
                "server" => unsafe { krmx_server_poll(handle as *mut KrmxServer, &mut event, -1) },
                _ => unsafe { krmx_client_poll(handle as *mut KrmxClient, &mut event, -1) },
            }
        });
        // Whether the poll is waiting already or not yet, it must end.
        thread::sleep(Duration::from_millis(20));
        assert_eq!(free(handle), KRMX_OK);
        assert_eq!(waiting.join().unwrap(), KRMX_NO_EVENT, "{kind}");
        assert_eq!(free(handle), KRMX_ERR_INVALID_HANDLE, "{kind}");
        assert_eq!(last_error(), format!("krmx_{kind}_free: {kind} is not a live krmx {kind} handle"));
    }
}

#[test]
fn the_last_error_belongs_to_the_thread_that_failed() {
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = ["config", "out"]
        .into_iter()
        .map(|arg| {
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                for _ in 0..1000 {
                    let result = match arg {
                        "config" => unsafe { krmx_client_config_default(ptr::null_mut()) },
                        _ => unsafe { krmx_client_new(ptr::null(), ptr::null_mut()) },
                    };
                    assert_eq!(result, KRMX_ERR_NULL_ARGUMENT);
                    let function = if arg == "config" { "krmx_client_config_default" } else { "krmx_client_new" };
                    assert_eq!(last_error(), format!("{function}: {arg} must not be NULL"));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}
