//! The files that packages install beside the binary, generated from the clap definitions in
//! `cli` so that they cannot drift from them: the man page ecrcp(1) and the bash, zsh and
//! fish completions. Writes the one file asked for into the directory it is given; touches
//! nothing else, needs no network or docker.

use std::path::{Path, PathBuf};

use clap_complete::Shell;
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;

use crate::cli::{self, Generated};

/// The name the pages and completions are written for.
const PROGRAM: &str = "ecrcp";

/// A file that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write '{}'", path.display())]
pub struct GenerateError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The file name of each output, as the vendor directories of man and the shells expect it
/// (`/usr/share/bash-completion/completions/ecrcp`, `/usr/share/zsh/vendor-completions/_ecrcp`,
/// `/usr/share/fish/vendor_completions.d/ecrcp.fish`).
fn file_name(what: Generated) -> &'static str {
    match what {
        Generated::Man => "ecrcp.1",
        Generated::Bash => "ecrcp",
        Generated::Zsh => "_ecrcp",
        Generated::Fish => "ecrcp.fish",
    }
}

/// Writes `what` into `dir`, which is created if missing, and returns the file's path.
pub fn write(what: Generated, dir: &Path) -> Result<PathBuf, GenerateError> {
    let text = match what {
        Generated::Man => man_page(),
        Generated::Bash => completion(Shell::Bash),
        Generated::Zsh => completion(Shell::Zsh),
        Generated::Fish => completion(Shell::Fish),
    };
    let path = dir.join(file_name(what));
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| GenerateError { path, source }
    };
    std::fs::create_dir_all(dir).map_err(failed(dir))?;
    std::fs::write(&path, text).map_err(failed(&path))?;
    Ok(path)
}

fn completion(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut public_command(), PROGRAM, &mut script);
    script
}

/// The command without its hidden subcommands, which clap_complete would offer otherwise.
fn public_command() -> clap::Command {
    let ecrcp = cli::command(PROGRAM);
    clap::Command::new(PROGRAM)
        .version(env!("CARGO_PKG_VERSION"))
        .args(ecrcp.get_arguments().cloned())
        .subcommands(
            ecrcp
                .get_subcommands()
                .filter(|command| !command.is_hide_set())
                .cloned(),
        )
}

/// One page for the whole command: the copy command's options, then those of `sync` and
/// `plugin` under headings of their own, so that `man ecrcp` answers every question (one
/// page per subcommand would leave it without the options the service runs with).
fn man_page() -> Vec<u8> {
    let mut page = Vec::new();
    write_man_page(&mut page).expect("writing into memory cannot fail");
    page
}

fn write_man_page(page: &mut Vec<u8>) -> std::io::Result<()> {
    let ecrcp = cli::command(PROGRAM);
    let subcommand = |command: &clap::Command, name: &str| {
        command
            .find_subcommand(name)
            .unwrap_or_else(|| panic!("{} has a {name} subcommand", command.get_name()))
            .clone()
    };
    let sync = subcommand(&ecrcp, "sync");
    let plugin = subcommand(&ecrcp, "plugin");
    let man = Man::new(ecrcp.clone()).title("ECRCP").manual("User Commands");
    man.render_title(page)?;
    man.render_name_section(page)?;
    man.render_synopsis_section(page)?;
    text_section(page, "DESCRIPTION", &help_text(ecrcp.get_after_help()))?;
    man.render_options_section(page)?;

    // The synopsis above has the command lines of `sync` and `plugin`.
    let sync_text = format!(
        "{}.\n\n{}",
        help_text(sync.get_about()),
        help_text(sync.get_after_help())
    );
    text_section(page, "SYNC", &sync_text)?;
    options_under(sync, "Options of ecrcp sync").render_options_section(page)?;
    let plugin_text = plugin
        .get_subcommands()
        .map(|command| format!("{}: {}.", command.get_name(), help_text(command.get_about())))
        .collect::<Vec<_>>()
        .join("\n\n");
    text_section(page, "PLUGIN", &plugin_text)?;
    options_under(subcommand(&plugin, "install"), "Options of ecrcp plugin").render_options_section(page)?;

    let iam = subcommand(&ecrcp, "iam-policy");
    let iam_text = format!(
        "{}.\n\n{}",
        help_text(iam.get_about()),
        help_text(iam.get_after_help())
    );
    text_section(page, "IAM POLICY", &iam_text)?;
    options_under(iam, "Options of ecrcp iam-policy").render_options_section(page)?;

    let mut roff = Roff::default();
    roff.control("SH", ["FILES"]);
    for (file, what) in [
        (
            crate::config::DEFAULT_PATH,
            "The images ecrcp sync mirrors; see ecrcp-images.toml(5).",
        ),
        (
            "/usr/share/doc/ecrcp/examples/images.toml",
            "An example to start that file from.",
        ),
        (
            "/etc/default/ecrcp",
            "The environment of ecrcp.service: AWS settings, time limits. Root-only (0600).",
        ),
        (
            "/etc/ecrcp/aws-credentials, /etc/ecrcp/aws-config",
            "The AWS files of the services, root-only (0600): systemd hands each run a copy \
             (LoadCredential=). Either may be absent.",
        ),
    ] {
        roff.control("TP", []).text([bold(file)]).text([roman(what)]);
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([
        bold("ecrcp-images.toml"),
        roman("(5), "),
        bold("docker"),
        roman("(1), "),
        bold("systemd.timer"),
        roman("(5)"),
    ]);
    roff.to_writer(page)
}

/// A subcommand's own options, all under one heading, without the -h/--help every command has.
fn options_under(command: clap::Command, heading: &'static str) -> Man {
    Man::new(
        command
            .disable_help_flag(true)
            .mut_args(|arg| arg.help_heading(heading)),
    )
}

fn help_text(text: Option<&clap::builder::StyledStr>) -> String {
    text.map(ToString::to_string).unwrap_or_default()
}

/// A section of help text: blank lines separate paragraphs, and lines that start with
/// spaces (examples) are kept as they are, unfilled.
fn text_section(page: &mut Vec<u8>, title: &str, text: &str) -> std::io::Result<()> {
    let mut roff = Roff::default();
    roff.control("SH", [title]);
    let mut example = false;
    for line in text.lines() {
        let indented = line.starts_with(' ');
        if indented != example {
            roff.control(if indented { "nf" } else { "fi" }, []);
            example = indented;
        }
        if line.trim().is_empty() {
            roff.control("PP", []);
        } else {
            roff.text([roman(line)]);
        }
    }
    if example {
        roff.control("fi", []);
    }
    roff.to_writer(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary one, removed by the test that made it.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ecrcp-generate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// The long options of the copy command and of `sync`, as clap knows them.
    fn long_options() -> Vec<String> {
        let ecrcp = cli::command(PROGRAM);
        let sync = ecrcp.find_subcommand("sync").unwrap().clone();
        let options: Vec<String> = ecrcp
            .get_arguments()
            .chain(sync.get_arguments())
            .filter_map(|arg| arg.get_long().map(str::to_owned))
            .collect();
        assert!(options.contains(&"no-clobber".to_owned()) && options.contains(&"log-format".to_owned()));
        options
    }

    #[test]
    fn each_output_is_one_file_of_the_name_packages_install() {
        let root = scratch("names");
        let dir = root.join("made/on/demand");
        for (what, name) in [
            (Generated::Man, "ecrcp.1"),
            (Generated::Bash, "ecrcp"),
            (Generated::Zsh, "_ecrcp"),
            (Generated::Fish, "ecrcp.fish"),
        ] {
            assert_eq!(write(what, &dir).unwrap(), dir.join(name));
        }
        let mut written: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        written.sort();
        assert_eq!(written, ["_ecrcp", "ecrcp", "ecrcp.1", "ecrcp.fish"]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_man_page_and_the_completions_know_every_long_option_and_no_hidden_command() {
        let dir = scratch("options");
        let read = |what| std::fs::read_to_string(write(what, &dir).unwrap()).unwrap();
        let (man, bash, zsh, fish) = (
            read(Generated::Man),
            read(Generated::Bash),
            read(Generated::Zsh),
            read(Generated::Fish),
        );
        std::fs::remove_dir_all(&dir).unwrap();
        for long in long_options() {
            // roff writes each '-' of an option as '\-'.
            let in_roff = format!("\\fB\\-\\-{}\\fR", long.replace('-', "\\-"));
            assert!(man.contains(&in_roff), "ecrcp.1 lacks {in_roff}");
            assert!(
                bash.contains(&format!("--{long}")),
                "the bash completion lacks --{long}"
            );
        }
        for section in [
            "OPTIONS OF ECRCP SYNC",
            "OPTIONS OF ECRCP PLUGIN",
            "IAM POLICY",
            "OPTIONS OF ECRCP IAM-POLICY",
            "SEE ALSO",
        ] {
            assert!(
                man.contains(&format!(".SH \"{section}\"")),
                "ecrcp.1 lacks {section}"
            );
        }
        assert!(man.contains("\\fBecrcp\\-images.toml\\fR(5)"));
        for (name, text) in [("ecrcp.1", &man), ("bash", &bash), ("zsh", &zsh), ("fish", &fish)] {
            assert!(text.contains("sync"), "{name} lacks sync");
            assert!(!text.contains("generate"), "{name} offers the hidden generate");
        }
    }

    #[test]
    fn an_unwritable_directory_is_named_in_the_error() {
        let file = scratch("blocked");
        std::fs::write(&file, "").unwrap();
        let error = write(Generated::Man, &file.join("man1")).unwrap_err();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(error.path, file.join("man1"));
        assert!(
            error
                .to_string()
                .contains(&format!("'{}'", file.join("man1").display())),
            "{error}"
        );
    }
}
