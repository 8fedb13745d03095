//! nginx serving one static file (`/body`, `body_bytes` long) for the
//! `http` workload, from a configuration written here, the same in every
//! target but for the port: Debian's package inside a guest, the host's own
//! nginx natively.

use super::{find_program, first_line_of, Server, Setup};
use std::path::PathBuf;

pub struct Nginx;

/// Where Debian (and most distributions) install nginx.
const PROGRAMS: &[&str] = &[
    "/usr/sbin/nginx",
    "/usr/local/sbin/nginx",
    "/usr/bin/nginx",
    "/usr/local/nginx/sbin/nginx",
];

/// The path the load generator asks for.
pub const BODY_PATH: &str = "/body";

impl Server for Nginx {
    fn name(&self) -> &'static str {
        "nginx"
    }

    fn port(&self) -> u16 {
        crate::protocol::HTTP_PORT
    }

    fn prepare(&self, setup: &Setup) -> Result<(), String> {
        let www = setup.dir.join("www");
        std::fs::create_dir_all(&www).map_err(|e| format!("creating {}: {e}", www.display()))?;
        let bytes = body_bytes(setup);
        std::fs::write(www.join("body"), body(bytes)).map_err(|e| format!("writing the body: {e}"))?;
        for temp in TEMP_DIRS {
            std::fs::create_dir_all(setup.dir.join(temp)).map_err(|e| format!("creating {temp}: {e}"))?;
        }
        std::fs::write(setup.dir.join("nginx.conf"), config(setup)).map_err(|e| format!("writing nginx.conf: {e}"))
    }

    fn command(&self, setup: &Setup) -> Result<Vec<String>, String> {
        let program = find_program(PROGRAMS)?;
        let dir = setup.dir.display().to_string();
        Ok(vec![
            program.display().to_string(),
            // The prefix, the configuration and the error log before the
            // configuration is read (else nginx tries /var/log/nginx first).
            "-p".into(),
            format!("{dir}/"),
            "-c".into(),
            format!("{dir}/nginx.conf"),
            "-e".into(),
            format!("{dir}/error.log"),
        ])
    }

    fn logs(&self, setup: &Setup) -> Vec<PathBuf> {
        vec![setup.dir.join("error.log")]
    }

    fn version(&self) -> Option<String> {
        first_line_of(&find_program(PROGRAMS).ok()?, &["-v"])
    }

    fn settings(&self, setup: &Setup) -> Vec<(String, String)> {
        vec![
            ("worker_processes".into(), setup.workers.to_string()),
            ("body_bytes".into(), body_bytes(setup).to_string()),
            ("access_log".into(), "off".into()),
            ("sendfile".into(), "on".into()),
            ("keepalive_requests".into(), KEEPALIVE_REQUESTS.to_string()),
        ]
    }
}

/// Requests one keep-alive connection may carry. nginx's default (1000)
/// would make the load generator reconnect every thousand requests, a cost
/// no target should pay for the benchmark's sake.
const KEEPALIVE_REQUESTS: u64 = 100_000_000;

const TEMP_DIRS: [&str; 5] = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"];

fn body_bytes(setup: &Setup) -> usize {
    setup.params.get("body_bytes").and_then(|v| v.parse().ok()).unwrap_or(1024)
}

/// `n` bytes of printable, incompressible-looking content (a fixed
/// generator, so every target serves the same bytes).
pub fn body(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'!' + (x % 94) as u8
        })
        .collect()
}

/// nginx.conf for `setup`: one server, one static file, no access log,
/// temporary files and the pid file in the private directory.
pub fn config(setup: &Setup) -> String {
    let dir = setup.dir.display();
    let user = if setup.root { "user root;\n" } else { "" };
    let temps: String = TEMP_DIRS.iter().map(|t| format!("    {t}_temp_path {dir}/{t};\n")).collect();
    format!(
        "# Written by vmbench's agent for the http workload.\n\
         {user}daemon off;\n\
         master_process on;\n\
         worker_processes {workers};\n\
         pid {dir}/nginx.pid;\n\
         error_log {dir}/error.log warn;\n\
         events {{\n    worker_connections 4096;\n}}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   sendfile on;\n\
         \x20   tcp_nopush on;\n\
         \x20   tcp_nodelay on;\n\
         \x20   keepalive_timeout 75s;\n\
         \x20   keepalive_requests {KEEPALIVE_REQUESTS};\n\
         \x20   default_type application/octet-stream;\n\
         {temps}\
         \x20   server {{\n\
         \x20       listen {port};\n\
         \x20       root {dir}/www;\n\
         \x20       location = {BODY_PATH} {{ }}\n\
         \x20   }}\n\
         }}\n",
        workers = setup.workers,
        port = setup.port,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Setup {
        Setup {
            dir: PathBuf::from("/tmp/x"),
            port: 8081,
            workers: 2,
            params: [("body_bytes".to_string(), "10".to_string())].into_iter().collect(),
            root: true,
        }
    }

    #[test]
    fn config_names_port_workers_and_private_paths() {
        let c = config(&setup());
        assert!(c.contains("listen 8081;"), "{c}");
        assert!(c.contains("worker_processes 2;"));
        assert!(c.contains("user root;"));
        assert!(c.contains("pid /tmp/x/nginx.pid;"));
        assert!(c.contains("client_body_temp_path /tmp/x/client_body;"));
        assert!(c.contains("location = /body"));
        assert!(!config(&Setup { root: false, ..setup() }).contains("user root"));
    }

    #[test]
    fn body_is_deterministic_and_sized() {
        assert_eq!(body(1024).len(), 1024);
        assert_eq!(body(100), body(100));
        assert!(body(1000).iter().all(|b| b.is_ascii_graphic()));
        assert_eq!(body_bytes(&setup()), 10);
    }
}
