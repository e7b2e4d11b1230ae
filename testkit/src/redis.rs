//! Stands in for a deployment's Redis (the cache, limits and dedupe
//! backend) with real Redis servers, so the wire format is Redis's own
//! RESP: the shared one that ops/test.sh starts
//! (`SWITCHBOARD_TEST_REDIS_URL`), or a private `redis-server` a test
//! starts, kills and restarts itself. Without either, the tests fail and
//! say how to run them.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Redis that the test command started.
pub fn shared_url() -> String {
    match std::env::var("SWITCHBOARD_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "SWITCHBOARD_TEST_REDIS_URL is not set: these tests need a real Redis; run them with ops/test.sh, which installs and starts one"
        ),
    }
}

/// A `[redis]` section on `url` with a key prefix of its own, so that tests
/// sharing one Redis do not see each other's keys.
pub fn redis_section(url: &str, on_failure: &str) -> String {
    format!(
        "[redis]\nurl = \"{url}\"\non_failure = \"{on_failure}\"\nkey_prefix = \"test-{}:\"\n",
        uuid::Uuid::now_v7().simple()
    )
}

/// A private redis-server on a loopback port.
pub struct RedisServer {
    /// The port.
    pub port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("address").port()
}

impl RedisServer {
    /// Starts redis-server on a free port and waits until it accepts connections.
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
        };
        server.restart();
        // Tests run in parallel: if another test's server took the port
        // first, ours exited and the port answers for the other one. Take
        // another port rather than share (and kill) a stranger's server.
        for _ in 0..5 {
            let exited = server
                .child
                .as_mut()
                .is_none_or(|c| !matches!(c.try_wait(), Ok(None)));
            if !exited {
                break;
            }
            server.port = free_port();
            server.restart();
        }
        server
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would: no shutdown, nothing saved).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty: nothing was saved).
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): these tests need it; run them with ops/test.sh, which installs it")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not open port {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
