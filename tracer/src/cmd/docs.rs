//! `tracer completions SHELL` and `tracer man`: generated from the clap definitions.
use anyhow::{Context as _, Result};
use clap::CommandFactory as _;

use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell) -> Result<i32> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "tracer", &mut std::io::stdout());
    Ok(0)
}

/// The man page: tracer(1) with every subcommand's manual appended as a section.
pub fn man() -> Result<i32> {
    let mut out = Vec::new();
    render_man(&mut out)?;
    use std::io::Write as _;
    let mut stdout = std::io::stdout();
    match stdout.write_all(&out).and_then(|_| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        r => r.map(|_| 0).context("writing the man page"),
    }
}

fn render_man(out: &mut Vec<u8>) -> Result<()> {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render(out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("tracer-{}", sub.get_name());
        let sub = sub.clone().name(name.clone()).bin_name(name.clone());
        out.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        let page = clap_mangen::Man::new(sub);
        page.render_description_section(out)?;
        page.render_options_section(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_page_has_every_command() {
        let mut out = Vec::new();
        render_man(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH tracer"),
            "{}",
            &text[..200]
        );
        assert!(text.contains("TRACER-SYSCALLS"));
        assert!(text.contains("\\-\\-per\\-process") || text.contains("per-process"));
        for flag in ["container", "show\\-cgroup"] {
            assert!(text.contains(&format!("\\-\\-{flag}")), "no --{flag}");
        }
        assert!(
            text.contains("TRACER_DOCKER_ROOT"),
            "the --container variables"
        );
        assert!(!text.contains("TRACER-FLOOR"), "hidden commands stay out");
    }

    #[test]
    fn completions_name_subcommands() {
        let mut cmd = Cli::command();
        let mut out = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "tracer", &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("syscalls")
                && text.contains("--interval")
                && text.contains("--container")
                && text.contains("--show-cgroup"),
            "bash completion lacks options"
        );
    }
}
