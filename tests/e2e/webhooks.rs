//! Threshold webhooks through the real stack: a hook added with `scripts/liveuser hooks`, readers
//! connecting until the count crosses it, a local receiver that checks every signature, and
//! exactly one delivery per crossing (a first attempt refused with 503 is retried).

use std::process::{Command, Output};
use std::time::Duration;

use liveuser_testkit::fleet::{connect_many, wait_for_count, Peer, PeerOptions};
use liveuser_testkit::paths::project_root;
use liveuser_testkit::receiver::Receiver;
use liveuser_testkit::stack::{Stack, StackOptions};
use liveuser_testkit::wait::eventually;

const LIMIT: Duration = Duration::from_secs(30);

/// Runs `scripts/liveuser` with `args` against `stack`, its admin token in the environment.
fn liveuser(stack: &Stack, args: &[&str]) -> Output {
    Command::new(project_root().join("scripts/liveuser"))
        .args(args)
        .env(
            "LIVEUSER_SERVICE",
            format!("http://127.0.0.1:{}", stack.app_port),
        )
        .env("LIVEUSER_ADMIN_TOKEN", &stack.admin_token)
        .output()
        .expect("scripts/liveuser runs")
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The events the receiver took, as `(type, count, crossing)`.
fn events(receiver: &Receiver) -> Vec<(String, u64, u64)> {
    receiver
        .taken()
        .iter()
        .map(|b| {
            (
                b["type"].as_str().unwrap_or_default().to_string(),
                b["count"].as_u64().unwrap_or_default(),
                b["crossing"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn a_hook_hears_once_when_the_count_reaches_its_threshold_and_once_when_it_falls_back() {
    let stack = Stack::start();
    let receiver = Receiver::start();
    let url = receiver.url("/liveuser");

    // Bad input: a precise refusal, and nothing stored.
    for (args, code, says) in [
        (
            vec![
                "hooks",
                "add",
                "hooked",
                "--url",
                "https://hooks.example/",
                "--above",
                "three",
            ],
            2,
            "--above must be a whole number",
        ),
        (
            vec![
                "hooks",
                "add",
                "hooked",
                "--url",
                "http://hooks.example/",
                "--above",
                "3",
            ],
            1,
            "hook_url_not_https",
        ),
        (
            vec![
                "hooks",
                "add",
                "hooked",
                "--url",
                "hooks.example",
                "--above",
                "3",
            ],
            1,
            "invalid_hook_url",
        ),
        (
            vec!["hooks", "remove", "hooked", "hk_nope"],
            1,
            "no webhook",
        ),
    ] {
        let out = liveuser(&stack, &args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", said(&out));
        assert!(said(&out).contains(says), "{args:?}: {}", said(&out));
    }
    let out = liveuser(&stack, &["hooks", "list", "hooked"]);
    assert!(
        said(&out).contains("0 webhooks on hooked"),
        "{}",
        said(&out)
    );

    let out = liveuser(
        &stack,
        &[
            "hooks",
            "add",
            "hooked",
            "--url",
            &url,
            "--above",
            "3",
            "--hysteresis",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", said(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.contains(&format!(
            "{url} when online >= 3, and when it falls below 2"
        )),
        "{stdout}"
    );
    let secret = stdout
        .lines()
        .find(|l| l.starts_with("whsec_"))
        .expect("the secret, printed once")
        .to_string();
    receiver.set_secret(&secret);
    let out = liveuser(&stack, &["hooks", "list", "hooked"]);
    assert!(said(&out).contains("1 webhook on hooked"), "{}", said(&out));
    assert!(!said(&out).contains("whsec_"), "never shown again");
    let id = String::from_utf8_lossy(&out.stdout)
        .split(':')
        .next()
        .unwrap_or_default()
        .to_string();
    // The first attempt finds the receiver down for a moment: it is tried again.
    receiver.answer_next(&[503]);

    let url = stack.ws_url("siteId=hooked");
    let mut readers: Vec<Peer> = connect_many(&url, "hooked", 2, &PeerOptions::default());
    wait_for_count(&readers, 2, LIMIT);
    std::thread::sleep(Duration::from_secs(2));
    assert!(events(&receiver).is_empty(), "2 is below the threshold");
    let joined = std::time::Instant::now();
    readers.extend(connect_many(&url, "hooked", 1, &PeerOptions::default()));
    wait_for_count(&readers, 3, LIMIT);
    assert!(
        eventually(LIMIT, || !events(&receiver).is_empty()),
        "online.above arrives; received: {:?}",
        receiver.received()
    );
    assert_eq!(events(&receiver), vec![("online.above".into(), 3, 1)]);
    let first = receiver.received()[0].at.duration_since(joined);
    let retried = receiver.received()[1]
        .at
        .duration_since(receiver.received()[0].at);
    eprintln!("webhooks: the third reader's connect to the first attempt {first:?}, to the retry {retried:?} more");
    // A slot, the settle time and a connect; the retry waits its 1 s backoff.
    assert!(first < Duration::from_secs(5), "{first:?}");
    assert!(retried >= Duration::from_millis(900), "{retried:?}");

    let above = &receiver.taken()[0];
    assert_eq!(above["site"], "hooked");
    assert_eq!(
        (above["threshold"].as_u64(), above["hysteresis"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(above["id"], format!("{id}.1"));

    // Down to 2: inside the hysteresis, nothing. Down to 1: below 3 − 1, one online.below.
    readers.pop().expect("a reader").close(1000);
    wait_for_count(&readers, 2, LIMIT);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(events(&receiver).len(), 1, "{:?}", events(&receiver));
    readers.pop().expect("a reader").close(1000);
    wait_for_count(&readers, 1, LIMIT);
    assert!(
        eventually(LIMIT, || events(&receiver).len() == 2),
        "online.below arrives; received: {:?}",
        receiver.received()
    );
    // Later broadcasts (the last reader's heartbeats, its sweeps) send nothing more.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        events(&receiver),
        vec![("online.above".into(), 3, 1), ("online.below".into(), 1, 2)]
    );
    let received = receiver.received();
    assert!(
        received.iter().all(|r| r.refused.is_none()),
        "every request was signed right: {received:?}"
    );
    assert_eq!(
        received.len(),
        3,
        "503, then the retry, then online.below: {received:?}"
    );
    assert_eq!(
        received[0].header("liveuser-delivery"),
        received[1].header("liveuser-delivery")
    );
    assert_eq!(received[2].header("liveuser-event"), Some("online.below"));

    // (Two executions' lines, in either order.)
    let log = stack.app_log_lines("liveuser webhook ");
    assert_eq!(log.len(), 2, "{log:?}");
    for line in [
        format!("hook={id} event=online.above crossing=1 count=3 attempts=2 result=delivered status=204"),
        format!("hook={id} event=online.below crossing=2 count=1 attempts=1 result=delivered status=204"),
    ] {
        assert!(log.iter().any(|l| l.contains(&line)), "{line}: {log:?}");
    }

    let out = liveuser(&stack, &["hooks", "remove", "hooked", &id]);
    assert!(
        said(&out).contains(&format!("removed {id} from hooked")),
        "{}",
        said(&out)
    );
    let out = liveuser(&stack, &["hooks", "list", "hooked"]);
    assert!(
        said(&out).contains("0 webhooks on hooked"),
        "{}",
        said(&out)
    );
    drop(readers);
}

#[test]
fn production_refuses_plain_http_receivers_and_unregistered_sites() {
    let stack = Stack::start_with(
        StackOptions::default()
            .with_config("unregistered_sites", "refuse")
            .with_config("webhook_http", "refuse"),
    );
    let out = liveuser(
        &stack,
        &[
            "hooks",
            "add",
            "nobody",
            "--url",
            "https://hooks.example/",
            "--above",
            "3",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        said(&out).contains("nobody is not registered"),
        "{}",
        said(&out)
    );
    assert!(liveuser(&stack, &["sites", "add", "shop"]).status.success());
    let out = liveuser(
        &stack,
        &[
            "hooks",
            "add",
            "shop",
            "--url",
            "http://127.0.0.1:9/hook",
            "--above",
            "3",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(said(&out).contains("hook_url_not_https"), "{}", said(&out));
    let out = liveuser(&stack, &["hooks", "list", "shop"]);
    assert!(said(&out).contains("0 webhooks on shop"), "{}", said(&out));
}
