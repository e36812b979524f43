//! The exit statuses ecrcp promises, in one place, so scripts can rely on them.

/// How a run ended, as the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every copy succeeded or was rightly skipped.
    Success,
    /// At least one copy failed; the others ran.
    CopyFailed,
    /// The command line was wrong; nothing was copied.
    Usage,
    /// The sync config, or the state directory a run keeps its files in, was wrong;
    /// nothing was copied.
    Config,
    /// Copies were put off for a reason that passes (the Docker Hub pull allowance, another
    /// run holding the lock); the next run picks them up.
    Deferred,
    /// Stopped by SIGINT (Ctrl-C) during a copy, or because docker went away under the plugin.
    Interrupted,
    /// Stopped by SIGTERM (a sync: SIGINT too); copies not yet started were not.
    Terminated,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::CopyFailed => 1,
            Exit::Usage | Exit::Config => 2,
            Exit::Deferred => 75,
            Exit::Interrupted => 130,
            Exit::Terminated => 143,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    #[test]
    fn exit_codes_match_cp_and_the_documented_table() {
        for (exit, code) in [
            (Exit::Success, 0),
            (Exit::CopyFailed, 1),
            (Exit::Usage, 2),
            (Exit::Config, 2),
            (Exit::Deferred, 75),
            (Exit::Interrupted, 130),
            (Exit::Terminated, 143),
        ] {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
    }
}
