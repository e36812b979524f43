//! docker child processes: signals as systemd and terminals deliver them, timeouts, captured stderr.
