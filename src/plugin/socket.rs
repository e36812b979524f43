//! The plugin socket of newer docker CLIs (`DOCKER_CLI_PLUGIN_SOCKET`): docker holds the
//! other end open while it runs, so end-of-file means docker has gone and ecrcp should stop.

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixStream};

use tokio::io::AsyncReadExt as _;

pub const ENV: &str = "DOCKER_CLI_PLUGIN_SOCKET";

/// Resolves when docker closes the plugin socket; never, when there is none to watch.
pub async fn docker_gone() {
    let Some(stream) = std::env::var(ENV).ok().and_then(|name| connect(&name)) else {
        return std::future::pending().await;
    };
    let Ok(mut stream) = tokio::net::UnixStream::from_std(stream) else {
        return std::future::pending().await;
    };
    let mut buffer = [0_u8; 64];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// `@name` is an abstract socket address (Linux), anything else a path.
fn connect(name: &str) -> Option<UnixStream> {
    let stream = match name.strip_prefix('@') {
        Some(abstract_name) => {
            let address = SocketAddr::from_abstract_name(abstract_name.as_bytes()).ok()?;
            UnixStream::connect_addr(&address).ok()?
        }
        None => UnixStream::connect(name).ok()?,
    };
    stream.set_nonblocking(true).ok()?;
    tracing::debug!(socket = name, "watching the docker CLI plugin socket");
    Some(stream)
}
