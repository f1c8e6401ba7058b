//! `liveuser`: the site owner's command. It registers the sites a LiveUser service serves and
//! their settings, through the service's own admin API (so the same command works against the
//! local stack and a deployed service):
//!
//! ```text
//! liveuser sites add SITE [--origin URL]... [--min-count N] [--page PREFIX]...
//! liveuser sites list
//! liveuser sites show SITE
//! liveuser sites remove SITE
//! liveuser hooks add SITE --url URL --above N [--hysteresis H]
//! liveuser hooks list SITE
//! liveuser hooks remove SITE ID
//! liveuser configure [...]      finish a deploy (see `fastly::configure`)
//! liveuser teardown --yes       remove it (see `fastly::teardown`)
//! ```
//!
//! Where the service is and its admin token: see [`target`]; Fastly's API: see [`fastly`].

mod args;
mod encode;
mod fastly;
mod hooks;
mod sites;
mod target;

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let command = match args::parse(&argv) {
        Ok(command) => command,
        Err(args::Usage(message)) => {
            eprintln!("liveuser: {message}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    let result = match command {
        args::Command::Help => {
            println!("{}", args::USAGE);
            Ok(())
        }
        args::Command::Sites { target, action } => {
            target::resolve(&target).and_then(|service| sites::run(&service, &action))
        }
        args::Command::Hooks { target, action } => {
            target::resolve(&target).and_then(|service| hooks::run(&service, &action))
        }
        args::Command::Configure(options) => fastly::configure::run(&options),
        args::Command::Teardown { confirmed } => fastly::teardown::run(confirmed),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("liveuser: {message}");
            ExitCode::FAILURE
        }
    }
}
