//! The sandbox's loopback listener (`Spec::loopback_listener`), the seam the egress proxy
//! plugs into: a socket created inside the sandbox's network namespace and served from the
//! host side, reachable by the program on exactly that port.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use warden_sandbox::{RunIo, Sandbox, Spec};

/// Port the tests ask the sandbox to listen on (inside its own network namespace, so any free
/// number works and concurrent tests do not collide).
const PORT: u16 = 3128;

fn sandbox() -> Sandbox {
    Sandbox::new(env!("CARGO_BIN_EXE_warden")).unwrap()
}

/// Serves each connection on the handed-over listener with one greeting line, from a host
/// thread, and reports the listener's local address.
fn greeter() -> (RunIo, mpsc::Receiver<std::net::SocketAddr>) {
    let (tx, rx) = mpsc::channel();
    let io = RunIo {
        on_listener: Some(Box::new(move |listener: std::net::TcpListener| {
            let _ = tx.send(listener.local_addr().unwrap());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else { break };
                    let mut buf = [0u8; 64];
                    let n = conn.read(&mut buf).unwrap_or(0);
                    let _ = writeln!(conn, "hello {}", String::from_utf8_lossy(&buf[..n]).trim());
                }
            });
        })),
        ..RunIo::default()
    };
    (io, rx)
}

#[test]
fn program_reaches_the_host_served_listener_and_no_other_port() {
    let script = r#"
import socket
s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
s.sendall(b"sandbox\n")
print(s.makefile().readline().strip())
for port in (3129, 80):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5)
        print(port, "connected")
    except OSError as e:
        print(port, type(e).__name__)
try:
    b = socket.socket(); b.bind(("127.0.0.1", 8080)); b.listen(); print("bind ok")
except OSError as e:
    print("bind", type(e).__name__)
"#;
    let mut spec = Spec::new("python3", ["-c", script]);
    spec.loopback_listener = Some(PORT);
    let (io, addr) = greeter();
    let outcome = sandbox().run_with(&spec, io).unwrap();
    assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "hello sandbox",
            // Landlock (ABI >= 4) allows TCP connect to the listener's port only.
            "3129 PermissionError",
            "80 PermissionError",
            "bind PermissionError",
        ],
        "{outcome:?}"
    );
    // The socket was created in the sandbox's namespace: bound to its loopback at PORT.
    let local = addr.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(local, std::net::SocketAddr::from(([127, 0, 0, 1], PORT)));
}

#[test]
fn the_listener_is_not_on_the_hosts_loopback() {
    // While a sandbox listens on its own 127.0.0.1:PORT, the host's loopback does not.
    let mut spec = Spec::new("sleep", ["1"]);
    spec.loopback_listener = Some(PORT);
    let (io, addr) = greeter();
    let handle = std::thread::spawn(move || sandbox().run_with(&spec, io));
    addr.recv_timeout(Duration::from_secs(10)).unwrap();
    let host = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], PORT)),
        Duration::from_secs(2),
    );
    // Something else on the host may use the port; it must not be the sandbox's greeter.
    if let Ok(mut conn) = host {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
        let _ = conn.write_all(b"probe\n");
        let mut buf = [0u8; 32];
        let n = conn.read(&mut buf).unwrap_or(0);
        assert!(!String::from_utf8_lossy(&buf[..n]).starts_with("hello"));
    }
    let outcome = handle.join().unwrap().unwrap();
    assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
}

#[test]
fn a_listener_without_a_server_is_refused() {
    let mut spec = Spec::new("true", Vec::<String>::new());
    spec.loopback_listener = Some(PORT);
    let err = sandbox().run_with(&spec, RunIo::default()).unwrap_err();
    assert!(
        matches!(err, warden_sandbox::Error::ListenerWithoutServer),
        "{err}"
    );
}
