//! Every command the README shows is one a test runs: each command of its shell blocks is
//! named here with the test that runs it, and that test must exist. A command added to the
//! README without a test, or a test renamed or removed, fails this.

use std::path::Path;

/// A README command (its first words) and where it is run: `module::test` in the end-to-end
/// tests, or `.ci/run` for the test command itself.
const RUN_BY: &[(&str, &str)] = &[
    (
        "scripts/serve",
        "serve::scripts_serve_runs_plain_fastly_compute_serve_with_its_own_pushpin",
    ),
    ("scripts/test", ".ci/run"),
    // The token `fastly auth login` stores (the test stores one with `fastly auth add`, which
    // needs no terminal) is the one configure uses.
    (
        "fastly auth login",
        "deploy::the_fastly_cli_deploys_a_new_service_and_liveuser_configure_finishes_it",
    ),
    // Its checks, then the publish and `scripts/liveuser configure` it runs.
    (
        "scripts/deploy",
        "deploy::scripts_deploy_says_what_is_missing_before_it_builds_or_publishes",
    ),
    (
        "scripts/liveuser sites add",
        "sites::an_owner_adds_shows_lists_and_removes_a_site_and_each_change_is_in_force_at_once",
    ),
    (
        "scripts/liveuser sites list",
        "sites::an_owner_adds_shows_lists_and_removes_a_site_and_each_change_is_in_force_at_once",
    ),
    (
        "scripts/liveuser sites show",
        "sites::an_owner_adds_shows_lists_and_removes_a_site_and_each_change_is_in_force_at_once",
    ),
    (
        "scripts/liveuser sites remove",
        "sites::an_owner_adds_shows_lists_and_removes_a_site_and_each_change_is_in_force_at_once",
    ),
    (
        "scripts/liveuser hooks add",
        "webhooks::a_hook_hears_once_when_the_count_reaches_its_threshold_and_once_when_it_falls_back",
    ),
    (
        "scripts/liveuser hooks list",
        "webhooks::a_hook_hears_once_when_the_count_reaches_its_threshold_and_once_when_it_falls_back",
    ),
    (
        "scripts/liveuser hooks remove",
        "webhooks::a_hook_hears_once_when_the_count_reaches_its_threshold_and_once_when_it_falls_back",
    ),
    (
        "scripts/liveuser teardown",
        "deploy::the_fastly_cli_deploys_a_new_service_and_liveuser_configure_finishes_it",
    ),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The commands of the README's `sh` blocks: continuation lines joined, comments and
/// leading `NAME=value` assignments dropped.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = !in_sh && line.trim() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let code = line.split(" #").next().unwrap_or_default().trim();
        if code.starts_with('#') || code.is_empty() {
            continue;
        }
        pending.push_str(code.trim_end_matches('\\'));
        pending.push(' ');
        if !code.ends_with('\\') {
            let words: Vec<&str> = pending
                .split_whitespace()
                .skip_while(|w| w.contains('=') && !w.starts_with('-'))
                .collect();
            commands.push(words.join(" "));
            pending.clear();
        }
    }
    commands
}

/// Whether `test` (`module::name`, or `.ci/run`) exists.
fn exists(test: &str) -> bool {
    if test == ".ci/run" {
        let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap_or_default();
        return ci.contains("scripts/test");
    }
    let Some((module, name)) = test.split_once("::") else {
        return false;
    };
    let file = root().join(format!("tests/e2e/{module}.rs"));
    std::fs::read_to_string(file).is_ok_and(|code| code.contains(&format!("fn {name}(")))
}

#[test]
fn every_readme_command_is_run_by_a_test() {
    let commands = readme_commands();
    assert!(commands.len() >= 8, "the README's commands: {commands:?}");
    for command in &commands {
        let run_by = RUN_BY
            .iter()
            .find(|(prefix, _)| command == prefix || command.starts_with(&format!("{prefix} ")));
        let Some((_, test)) = run_by else {
            panic!("the README shows `{command}`, which no test here is said to run");
        };
        assert!(
            exists(test),
            "`{command}` is said to be run by {test}, which does not exist"
        );
    }
}

#[test]
fn commands_are_read_whole_from_the_readme() {
    let commands = readme_commands();
    assert!(commands.contains(&"scripts/test".to_string()));
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("scripts/liveuser sites add my-site --origin")),
        "a continued line, its variables dropped: {commands:?}"
    );
}
