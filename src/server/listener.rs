//! The listening sockets and the accept loops: one thread per listener hands
//! each client to the session pool, or answers 421 at once when it is full.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::connection::{serve, ServerContext};
use super::pool::Pool;
use crate::config::Listener;
use crate::log::Escaped;
use crate::smtp::reply::{self, Reply};

/// How long a client that finds every place taken waits for one: sessions
/// that said their 221 may still be closing (see [`Pool::run_within`]).
const FULL_POOL_GRACE: Duration = Duration::from_millis(100);

/// A session thread with no client for this long ends.
const IDLE_THREAD_LIFETIME: Duration = Duration::from_secs(60);
/// How long the listener waits to tell a client the pool is full.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct BoundListener {
    pub config: Listener,
    pub socket: TcpListener,
}

/// Binds every configured listener, or says which one failed.
pub fn bind_all(listeners: &[Listener]) -> Result<Vec<BoundListener>, String> {
    listeners
        .iter()
        .map(|config| {
            TcpListener::bind(config.addr)
                .map(|socket| BoundListener {
                    config: config.clone(),
                    socket,
                })
                .map_err(|e| format!("cannot listen on {}: {e}", config.addr))
        })
        .collect()
}

/// Sessions per client address, shared by all listeners.
#[derive(Default)]
pub struct ClientCounts {
    sessions: Mutex<HashMap<IpAddr, usize>>,
}

/// One client's place among the sessions; given back when dropped.
pub struct ClientSlot {
    counts: Arc<ClientCounts>,
    ip: IpAddr,
}

impl ClientCounts {
    /// A place for one more session from `ip`, if it has fewer than `max`.
    pub fn try_take(counts: &Arc<ClientCounts>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut sessions = counts.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let count = sessions.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            counts: Arc::clone(counts),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut sessions = self
            .counts
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = sessions.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                sessions.remove(&self.ip);
            }
        }
    }
}

/// Starts an accept thread for each listener; sessions share one pool, which
/// is returned so that shutdown can wait for it to empty. `max_connections`
/// is fixed here: SIGHUP does not change it.
pub fn start(listeners: Vec<BoundListener>, ctx: Arc<ServerContext>) -> std::io::Result<Arc<Pool>> {
    let pool = Arc::new(Pool::new(
        ctx.config.get().max_connections,
        IDLE_THREAD_LIFETIME,
    ));
    let counts = Arc::new(ClientCounts::default());
    for listener in listeners {
        let ctx = Arc::clone(&ctx);
        let pool = Arc::clone(&pool);
        let counts = Arc::clone(&counts);
        thread::Builder::new()
            .name(format!("listen {}", listener.config.addr))
            .spawn(move || accept_loop(listener, &ctx, &pool, &counts))?;
    }
    Ok(pool)
}

fn accept_loop(
    listener: BoundListener,
    ctx: &Arc<ServerContext>,
    pool: &Pool,
    counts: &Arc<ClientCounts>,
) {
    loop {
        let (stream, peer) = match listener.socket.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: wait rather than spin.
                log::error!("accept on {}: {e}", listener.config.addr);
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let config = ctx.config.get();
        if ctx.stopping.load(Ordering::SeqCst) {
            refuse(&stream, &reply::shutting_down(&config.hostname));
            continue;
        }
        // Clients that may relay (the box itself, the LAN) are not limited
        // per address, as Postfix exempts $mynetworks.
        let ip = peer.ip().to_canonical();
        let slot = if config.may_relay(ip) {
            None
        } else {
            match ClientCounts::try_take(counts, ip, config.max_connections_per_ip) {
                Some(slot) => Some(slot),
                None => {
                    log::warn!("too many connections from {ip}, refused");
                    refuse(
                        &stream,
                        &reply::too_many_connections_from_ip(&config.hostname),
                    );
                    continue;
                }
            }
        };
        let session_ctx = Arc::clone(ctx);
        // The session owns one handle of the socket; the panic guard keeps
        // another to say 421 (not on a TLS listener, where clear text would
        // only be garbage to the client).
        let (job_stream, guard_stream) = match (stream.try_clone(), stream.try_clone()) {
            (Ok(job), Ok(guard)) => (job, (!listener.config.implicit_tls).then_some(guard)),
            (Err(e), _) | (_, Err(e)) => {
                log::error!("cannot use a client socket: {e}");
                continue;
            }
        };
        let listener_config = listener.config.clone();
        let hostname = config.hostname.clone();
        let registered = match stream.try_clone() {
            Ok(clone) => clone,
            Err(e) => {
                log::error!("cannot use a client socket: {e}");
                continue;
            }
        };
        let job = Box::new(move || {
            let _slot = slot;
            let _registration = session_ctx.register(registered);
            guard_session(guard_stream.as_ref(), &hostname, || {
                serve(job_stream, &listener_config, &session_ctx)
            })
        });
        if pool.run_within(job, FULL_POOL_GRACE).is_err() {
            log::warn!("too many connections, refused {peer}");
            refuse(&stream, &reply::too_many_connections(&config.hostname));
        }
    }
}

/// Runs a session; a panic in it ends that session with a 421, not the server.
fn guard_session(stream: Option<&TcpStream>, hostname: &str, session: impl FnOnce()) {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(session));
    if let Err(panic) = run {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let peer = stream
            .and_then(|s| s.peer_addr().ok())
            .map(|a| a.to_string())
            .unwrap_or_default();
        // A panic message may quote what the client sent.
        log::error!("session with {peer} panicked: {}", Escaped(&what));
        if let Some(mut writer) = stream {
            let _ = writer.write_all(reply::internal_error(hostname).to_wire().as_bytes());
        }
    }
}

/// RFC 5321 3.8: a server that cannot serve a client now says 421 and closes.
fn refuse(stream: &TcpStream, reply: &Reply) {
    let _ = stream.set_write_timeout(Some(REFUSAL_WRITE_TIMEOUT));
    let mut writer = stream;
    let _ = writer.write_all(reply.to_wire().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_panicking_session_gets_421() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        guard_session(Some(&server), "mx.test", || panic!("crafted header"));
        drop(server);
        let mut reply = String::new();
        client.read_to_string(&mut reply).unwrap();
        assert_eq!(
            reply,
            "421 4.3.0 mx.test Error: internal error, closing connection\r\n"
        );
    }
}
