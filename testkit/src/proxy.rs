//! A TCP proxy a test can take down and bring back: stands between the service and one of its
//! backends, so a test can make that backend unreachable without stopping anything else.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    target: Arc<AtomicU16>,
    /// The client side of every connection forwarded so far, to cut when it goes down.
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Listens on a free port; forwards each connection to the target set with
    /// [`Proxy::set_target`] (a stack's ports are known only once it runs).
    pub fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let up = Arc::new(AtomicBool::new(true));
        let target = Arc::new(AtomicU16::new(0));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (accepting, forward_to, forwarded) =
            (Arc::clone(&up), Arc::clone(&target), Arc::clone(&open));
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !accepting.load(Ordering::SeqCst) {
                    // Down: the connection is closed before a byte is read, as a dead host's
                    // would be reset.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                if let (Ok(mut list), Ok(copy)) = (forwarded.lock(), client.try_clone()) {
                    list.push(copy);
                }
                let target_port = forward_to.load(Ordering::SeqCst);
                thread::spawn(move || forward(client, target_port));
            }
        });
        Proxy {
            port,
            up,
            target,
            open,
        }
    }

    pub fn set_target(&self, port: u16) {
        self.target.store(port, Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Takes the backend down (`false`: new connections are refused and open ones cut) or
    /// brings it back (`true`).
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            if let Ok(mut list) = self.open.lock() {
                for stream in list.drain(..) {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

/// Copies bytes both ways until either side closes.
fn forward(client: TcpStream, target_port: u16) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(client_read), Ok(server_read)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let upstream = thread::spawn(move || pipe(client_read, server));
    pipe(server_read, client);
    let _ = upstream.join();
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
