//! Servers driven through `krmx_server_*`: creating one from the defaults, reading its user table,
//! and a polling thread as a dedicated game server has.

use std::ffi::c_char;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use krmx::ffi::event::KrmxEvent;
use krmx::ffi::result::KrmxResult::*;
use krmx::ffi::server::*;

use super::{last_error, text};

/// `krmx_server_new` with the default config changed by `configure`. Pings are off unless
/// `configure` turns them on, so that no test sees a ping it did not ask for.
pub fn new_server(configure: impl FnOnce(&mut KrmxServerConfig)) -> *mut KrmxServer {
    let mut config: KrmxServerConfig = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { krmx_server_config_default(&mut config) }, KRMX_OK);
    config.ping_interval_ms = 0;
    configure(&mut config);
    let mut raw = ptr::null_mut();
    assert_eq!(unsafe { krmx_server_new(&config, &mut raw) }, KRMX_OK, "{}", last_error());
    raw
}

/// The user table through `krmx_server_user_count` and `krmx_server_user`.
pub fn server_users(raw: *mut KrmxServer) -> Vec<(String, bool)> {
    let mut count = 0usize;
    assert_eq!(unsafe { krmx_server_user_count(raw, &mut count) }, KRMX_OK);
    (0..count)
        .map(|i| {
            let mut buffer = [0 as c_char; 33];
            let (mut len, mut linked) = (0usize, false);
            let r = unsafe { krmx_server_user(raw, i, buffer.as_mut_ptr(), buffer.len(), &mut len, &mut linked) };
            assert_eq!(r, KRMX_OK);
            (text(buffer.as_ptr(), len).unwrap(), linked)
        })
        .collect()
}

/// A thread that polls a server (as a game server's loop would) and hands every event, as
/// `render` makes it, to the test thread, which calls the other functions meanwhile. It polls with
/// a short timeout, so that it notices [`Poller::stop`] soon.
pub struct Poller {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    pub fn start<T: Send + 'static>(server: *mut KrmxServer, render: fn(&KrmxEvent) -> T) -> (Poller, Receiver<T>) {
        let (tx, events) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (handle, stop_flag) = (server as usize, stop.clone());
        let thread = thread::spawn(move || {
            let server = handle as *mut KrmxServer;
            while !stop_flag.load(Ordering::SeqCst) {
                let mut event = KrmxEvent::none();
                match unsafe { krmx_server_poll(server, &mut event, 20) } {
                    KRMX_OK => {
                        if tx.send(render(&event)).is_err() {
                            return;
                        }
                    }
                    KRMX_NO_EVENT => {}
                    other => panic!("server poll failed: {other:?} {}", last_error()),
                }
            }
        });
        (Poller { stop, thread: Some(thread) }, events)
    }

    /// Stops polling and waits for the thread to end: call it before freeing the server.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop();
    }
}
