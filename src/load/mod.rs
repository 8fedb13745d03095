//! vmbench's own load generators for the application workloads: HTTP/1.1
//! against nginx (`http.rs`) and the MySQL protocol against MariaDB
//! (`sql.rs`). Each runs on OS threads of its own, never on the thread that
//! reads a console or samples a footprint.

pub mod http;
pub mod sql;
