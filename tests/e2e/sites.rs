//! Site management as a site owner does it: `scripts/liveuser sites …` (the `liveuser-cli`
//! crate, run the way the README runs it) against a running local stack that, like
//! production, serves registered sites only.

use std::process::{Command, Output};
use std::time::Duration;

use liveuser_testkit::client::{Client, Received};
use liveuser_testkit::paths::project_root;
use liveuser_testkit::stack::{Stack, StackOptions};

fn production_like() -> Stack {
    Stack::start_with(StackOptions::default().with_config("unregistered_sites", "refuse"))
}

/// Runs `scripts/liveuser` with `args` against `stack`, its admin token in the environment.
fn liveuser(stack: &Stack, args: &[&str]) -> Output {
    liveuser_with(stack, args, &[("LIVEUSER_ADMIN_TOKEN", &stack.admin_token)])
}

fn liveuser_with(stack: &Stack, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(project_root().join("scripts/liveuser"));
    command
        .args(args)
        .env(
            "LIVEUSER_SERVICE",
            format!("http://127.0.0.1:{}", stack.app_port),
        )
        .env_remove("LIVEUSER_ADMIN_TOKEN");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("scripts/liveuser runs")
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn online_status(stack: &Stack, site: &str) -> (u16, serde_json::Value) {
    let resp = stack.http("GET", &format!("/api/online/{site}"), &[], b"");
    (resp.status, resp.json())
}

#[test]
fn an_owner_adds_shows_lists_and_removes_a_site_and_each_change_is_in_force_at_once() {
    let stack = production_like();
    // Unregistered: refused, with a code the widget can tell apart.
    let (status, body) = online_status(&stack, "docs");
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_site"))
    );
    assert!(Client::try_connect(&stack.ws_url("siteId=docs")).is_err());

    let out = liveuser(
        &stack,
        &[
            "sites",
            "add",
            "docs",
            "--origin",
            "http://allowed.example",
            "--min-count",
            "3",
        ],
    );
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains(
            "added docs: origins: http://allowed.example; privacy floor: 3; pages: every page"
        ),
        "{}",
        said(&out)
    );
    let (status, body) = online_status(&stack, "docs");
    assert_eq!((status, body["minCount"].as_u64()), (200, Some(3)));
    let url = stack.ws_url("siteId=docs");
    assert!(Client::try_connect_from(&url, Some("http://evil.example")).is_err());
    let mut reader =
        Client::try_connect_from(&url, Some("http://allowed.example")).expect("its own page");
    reader.send_text(r#"{"type":"join","siteId":"docs"}"#);
    assert!(matches!(
        reader.recv(Duration::from_secs(10)),
        Received::Text(_)
    ));

    // Changed settings replace the old ones.
    let out = liveuser(&stack, &["sites", "add", "docs", "--page", "/guide/"]);
    assert!(
        said(&out).contains("updated docs: origins: any; privacy floor: none; pages: /guide/"),
        "{}",
        said(&out)
    );
    let out = liveuser(&stack, &["sites", "show", "docs"]);
    assert!(
        said(&out).contains("docs: origins: any; privacy floor: none; pages: /guide/"),
        "{}",
        said(&out)
    );
    let out = liveuser(&stack, &["sites", "list"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "docs\n");
    assert!(said(&out).contains("1 site registered"));

    let out = liveuser(&stack, &["sites", "remove", "docs"]);
    assert!(said(&out).contains("removed docs"), "{}", said(&out));
    assert_eq!(online_status(&stack, "docs").0, 404);
    let out = liveuser(&stack, &["sites", "show", "docs"]);
    assert!(!out.status.success());
    assert!(
        said(&out).contains("docs is not registered"),
        "{}",
        said(&out)
    );
}

#[test]
fn bad_input_gets_a_clear_message_and_changes_nothing() {
    let stack = production_like();
    let out = liveuser(&stack, &["sites", "add", "docs", "--min-count", "3"]);
    assert!(out.status.success(), "{}", said(&out));
    let kept = "docs: origins: any; privacy floor: 3; pages: every page";
    for (args, code, says) in [
        (
            &["sites", "add", "docs", "--min-count", "five"][..],
            2,
            "--min-count must be a whole number",
        ),
        (
            &["sites", "add", "docs", "--origin", "docs.example"],
            1,
            "is not an origin",
        ),
        (
            &["sites", "add", "docs", "--page", "guide"],
            1,
            "is not a page prefix",
        ),
        (&["sites", "add", "my site"], 2, "is not a site id"),
        (&["sites", "show", "nobody"], 1, "nobody is not registered"),
        (&["sites", "rename", "docs"], 2, "unknown command"),
    ] {
        let out = liveuser(&stack, args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", said(&out));
        assert!(said(&out).contains(says), "{args:?}: {}", said(&out));
    }
    let wrong = liveuser_with(
        &stack,
        &["sites", "list"],
        &[("LIVEUSER_ADMIN_TOKEN", "wrong")],
    );
    assert!(
        said(&wrong).contains("refused the admin token"),
        "{}",
        said(&wrong)
    );
    let remote = liveuser_with(
        &stack,
        &["sites", "list"],
        &[("LIVEUSER_SERVICE", "https://my-liveuser.example")],
    );
    assert!(
        said(&remote).contains("no admin token for https://my-liveuser.example"),
        "{}",
        said(&remote)
    );
    let out = liveuser(&stack, &["sites", "show", "docs"]);
    assert!(said(&out).contains(kept), "nothing changed: {}", said(&out));
}

#[test]
fn the_registry_lists_past_one_store_page() {
    let stack = production_like();
    let auth = format!("Bearer {}", stack.admin_token);
    let n = 1_234;
    for i in 0..n {
        let resp = stack.http(
            "PUT",
            &format!("/admin/sites/site-{i:05}"),
            &[("authorization", &auth)],
            b"{}",
        );
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    let out = liveuser(&stack, &["sites", "list"]);
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(listed.len(), n, "{}", said(&out));
    assert_eq!(listed.first().map(String::as_str), Some("site-00000"));
    assert_eq!(listed.last().map(String::as_str), Some("site-01233"));
    assert!(said(&out).contains(&format!("{n} sites registered")));
}
