//! What a person (or a CI log) sees of a copy run: `cp -v` style lines on stdout, one
//! `ecrcp: cannot copy` line per failure on stderr, and the `-i` prompt.

use std::io::{BufRead as _, Write as _};

use crate::app::Reporter;
use crate::copy::{Confirm, Outcome, Skip};
use crate::plan::CopyJob;
use crate::reference::Reference;

/// Prints results as `cp` would.
pub struct Terminal {
    pub verbose: bool,
    pub dry_run: bool,
}

impl Terminal {
    fn line(&self, job: &CopyJob, destination: Option<&Reference>, outcome: &Outcome) -> Option<String> {
        let destination = destination.map(ToString::to_string).unwrap_or_default();
        let arrow = format!("'{}' -> '{destination}'", job.label);
        match outcome {
            Outcome::Copied { .. } if self.verbose => Some(arrow),
            Outcome::AlreadyThere { .. } if self.verbose => Some(format!("{arrow} (already there)")),
            Outcome::WouldCopy(why) => Some(format!("would copy {arrow} ({})", why.as_str())),
            Outcome::Skipped(skip) if self.verbose || self.dry_run => {
                let why = match skip {
                    Skip::Exists => "exists",
                    Skip::Unchanged => "unchanged",
                    Skip::Declined => "declined",
                };
                Some(format!("skipped {arrow} ({why})"))
            }
            _ => None,
        }
    }
}

impl Reporter for Terminal {
    fn finished(&self, job: &CopyJob, destination: Option<&Reference>, result: &anyhow::Result<Outcome>) {
        match result {
            Ok(outcome) => {
                if let Some(line) = self.line(job, destination, outcome) {
                    println!("{line}");
                }
                if let Some(extras) = outcome.extras() {
                    if self.verbose {
                        let destination = destination.map(ToString::to_string).unwrap_or_default();
                        for added in &extras.added {
                            println!("'{}' -> '{destination}': added {added}", job.label);
                        }
                    }
                    for note in &extras.notes {
                        eprintln!("ecrcp: note: '{}': {note}", job.label);
                    }
                }
            }
            Err(error) => eprintln!("ecrcp: cannot copy '{}': {error:#}", job.label),
        }
    }

    fn stopped(&self, _reason: &anyhow::Error, skipped: usize) {
        if skipped > 0 {
            eprintln!(
                "ecrcp: stopped; {skipped} more cop{} not attempted",
                if skipped == 1 { "y" } else { "ies" }
            );
        }
    }
}

impl Confirm for Terminal {
    /// Asks on stderr and reads the answer from stdin, as `cp -i` does; no answer is "no".
    fn overwrite(&self, destination: &Reference) -> bool {
        eprint!("ecrcp: overwrite '{destination}'? ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim_start().chars().next(), Some('y' | 'Y'))
    }
}
