//! The deploy path, run rather than read: the real Fastly CLI deploys the package this project
//! builds against a stand-in of Fastly's API (the CLI honours `FASTLY_API_ENDPOINT`), then the
//! project's `scripts/liveuser configure` finishes it and `scripts/liveuser teardown` removes
//! it; the tests assert what was provisioned, and what was left.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use liveuser_edge::platform::fastly_toml::{
    ADMIN_TOKEN_SECRET, CONFIG_STORE, FANOUT_BACKEND, FASTLY_API_BACKEND, KV_STORE,
    PUBLISH_TOKEN_SECRET, SECRET_STORE,
};
use liveuser_testkit::fastly_api::{Backend, FastlyApi};
use liveuser_testkit::manifest::Manifest;
use liveuser_testkit::paths::fastly_cli;
use liveuser_testkit::paths::project_root;
use liveuser_testkit::process::random_u64;

const DOMAIN: &str = "liveuser-e2e.edgecompute.app";
const API_TOKEN: &str = "stand-in-deploy-token";

/// Runs `cmd` with the stand-in's environment (and the deploy token, unless `cmd` removed
/// `FASTLY_API_TOKEN`), failing the test if it takes over two minutes.
fn run(cmd: &mut Command, api: &FastlyApi, dir: &Path) -> Output {
    // The deploy token, unless the command was set up without one.
    let without_token = cmd
        .get_envs()
        .any(|(k, v)| k == "FASTLY_API_TOKEN" && v.is_none());
    if !without_token {
        cmd.env("FASTLY_API_TOKEN", API_TOKEN);
    }
    cmd.current_dir(dir)
        .env("FASTLY_API_ENDPOINT", api.url())
        .env("FASTLY_ACCOUNT_ENDPOINT", api.url())
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("FASTLY_CLI", fastly_cli())
        .env_remove("FASTLY_SERVICE_ID");
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {:?}: {e} (run scripts/setup)", cmd.get_program()));
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{:?} took over two minutes", cmd.get_program());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("output")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A first deploy of the package `scripts/test` built, as non-interactive as CI runs it, by
/// the real Fastly CLI from a copy of fastly.toml in a directory of its own (returned).
fn deployed(api: &FastlyApi, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{:x}", random_u64()));
    fs::create_dir_all(dir.join("config")).expect("temp dir");
    fs::copy(project_root().join("fastly.toml"), dir.join("fastly.toml")).expect("copy manifest");
    let package = project_root().join("pkg/liveuser-edge.tar.gz");
    assert!(
        package.exists(),
        "run scripts/test, which builds the package first"
    );
    let out = run(
        Command::new(fastly_cli())
            .args([
                "compute",
                "deploy",
                "--non-interactive",
                "--status-check-off",
            ])
            .arg("--package")
            .arg(&package)
            .args(["--domain", DOMAIN]),
        api,
        &dir,
    );
    assert!(out.status.success(), "deploy failed:\n{}", text(&out));
    dir
}

#[test]
fn the_fastly_cli_deploys_a_new_service_and_liveuser_configure_finishes_it() {
    let api = FastlyApi::start();
    let dir = deployed(&api, "lu-deploy");

    // The CLI wrote the new service's id into fastly.toml (and rewrote the rest).
    let manifest = Manifest::read(&dir.join("fastly.toml"));
    let sid = manifest
        .service_id()
        .expect("service_id written")
        .to_string();
    let before = api.with_state(|s| s.service().and_then(|svc| svc.active().cloned()));
    let before = before.expect("a version was activated");
    assert_eq!(before.number, 1);
    assert_eq!(
        before.backends[FANOUT_BACKEND].address, "127.0.0.1",
        "a publish cannot know the new service's own domain: configure fixes it"
    );

    // Then the project's own finishing step, with secrets from files (never typed on a
    // command line).
    let publish_token = format!("publish-{:x}", random_u64());
    fs::write(dir.join("publish-token"), format!("{publish_token}\n")).expect("token file");
    let liveuser = project_root().join("scripts/liveuser");
    let configure = || {
        let mut command = Command::new(&liveuser);
        command.arg("configure");
        command
    };
    let out = run(
        configure()
            .arg("--publish-token-file")
            .arg(dir.join("publish-token"))
            .arg("--generate-admin-token")
            .arg(dir.join("admin-token")),
        &api,
        &dir,
    );
    assert!(out.status.success(), "configure failed:\n{}", text(&out));
    assert!(
        text(&out).contains("next: register your sites"),
        "the owner is told what comes next:\n{}",
        text(&out)
    );
    let admin_token = fs::read_to_string(dir.join("admin-token")).expect("admin token file");
    let admin_token = admin_token.trim();
    assert!(admin_token.len() >= 32);
    for secret in [publish_token.as_str(), admin_token] {
        assert!(
            !text(&out).contains(secret),
            "a secret was printed:\n{}",
            text(&out)
        );
    }

    api.with_state(|s| {
        let svc = s.service().expect("the service exists");
        assert_eq!(svc.id, sid);
        assert_eq!(
            (svc.name.as_str(), svc.kind.as_str()),
            ("liveuser-edge", "wasm")
        );
        let active = svc.active().expect("an active version");
        assert_eq!(active.number, 2, "configure activated a second version");
        assert!(
            svc.version(1).and_then(|v| v.package_bytes).unwrap_or(0) > 100_000,
            "the package was uploaded"
        );
        assert_eq!(active.domains, vec![DOMAIN.to_string()]);

        assert_eq!(
            active.backends[FANOUT_BACKEND],
            Backend {
                name: FANOUT_BACKEND.into(),
                address: DOMAIN.into(),
                port: 443,
                override_host: Some(DOMAIN.into()),
                ssl_cert_hostname: Some(DOMAIN.into()),
                ssl_sni_hostname: Some(DOMAIN.into()),
                use_ssl: true,
            }
        );
        let api_backend = &active.backends[FASTLY_API_BACKEND];
        assert_eq!(
            (api_backend.address.as_str(), api_backend.port),
            ("api.fastly.com", 443)
        );
        assert_eq!(api_backend.override_host.as_deref(), Some("api.fastly.com"));
        assert_eq!(
            api_backend.ssl_cert_hostname.as_deref(),
            Some("api.fastly.com")
        );
        assert_eq!(
            api_backend.ssl_sni_hostname.as_deref(),
            Some("api.fastly.com")
        );

        let kv = s
            .kv_stores
            .iter()
            .find(|st| st.name == KV_STORE)
            .expect("KV store created");
        let config = s
            .config_stores
            .iter()
            .find(|st| st.name == CONFIG_STORE)
            .expect("config store created");
        let secrets = s
            .secret_stores
            .iter()
            .find(|st| st.name == SECRET_STORE)
            .expect("secret store created");
        for store in [kv, config, secrets] {
            assert_eq!(
                active.resources.get(&store.name),
                Some(&store.id),
                "{} is linked to the service",
                store.name
            );
        }
        assert_eq!(config.entries["heartbeat_interval_secs"], b"30");
        assert_eq!(config.entries["broadcast_interval_ms"], b"500");
        assert_eq!(
            secrets.entries[PUBLISH_TOKEN_SECRET],
            publish_token.as_bytes()
        );
        assert_eq!(secrets.entries[ADMIN_TOKEN_SECRET], admin_token.as_bytes());
        assert!(
            s.products.contains(&("fanout".to_string(), sid.clone())),
            "Fanout enabled"
        );

        assert!(
            s.requests
                .iter()
                .all(|r| r.path.contains("openid-configuration")
                    || r.header("fastly-key") == Some(API_TOKEN)),
            "every API call carried the token"
        );
        let unknown: Vec<String> = s
            .unknown()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert!(
            unknown.is_empty(),
            "requests the stand-in did not know: {unknown:?}"
        );
        println!("deploy: {} API requests:", s.requests.len());
        for r in &s.requests {
            println!("  {} {} -> {}", r.method, r.path, r.status);
        }
    });

    // Running it again changes nothing.
    let out = run(
        configure()
            .arg("--publish-token-file")
            .arg(dir.join("publish-token")),
        &api,
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("already points at"), "{}", text(&out));
    assert_eq!(
        api.with_state(|s| s.service().and_then(|svc| svc.active()).map(|v| v.number)),
        Some(2)
    );

    let configure_with = |extra: &[&str]| {
        run(
            configure()
                .arg("--publish-token-file")
                .arg(dir.join("publish-token"))
                .args(extra),
            &api,
            &dir,
        )
    };
    let out = configure_with(&[]);
    assert!(out.status.success(), "{}", text(&out));

    // The session key: made on the first run, rotated into the other slot on request, the old
    // slot kept (what it signed stays valid).
    let session_keys = || {
        api.with_state(|s| {
            let secrets = s
                .secret_stores
                .iter()
                .find(|st| st.name == SECRET_STORE)
                .expect("secret store");
            let named = s
                .config_stores
                .iter()
                .find(|st| st.name == CONFIG_STORE)
                .and_then(|st| st.entries.get("session_key").cloned());
            (
                secrets.entries.get("session_key_a").cloned(),
                secrets.entries.get("session_key_b").cloned(),
                named,
            )
        })
    };
    let (first, none, named) = session_keys();
    assert_eq!(
        first.as_ref().map(Vec::len),
        Some(32),
        "a random 32-byte key"
    );
    assert_eq!((none, named.as_deref()), (None, Some(&b"a"[..])));
    assert!(text(&out).contains("session key a signs SSE sessions"));
    let out = configure_with(&["--rotate-session-key"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("session key rotated: b signs now"),
        "{}",
        text(&out)
    );
    let (kept, second, named) = session_keys();
    assert_eq!(kept, first, "the old slot is kept");
    assert_eq!(second.as_ref().map(Vec::len), Some(32));
    assert_eq!(named.as_deref(), Some(&b"b"[..]));
    let out = configure_with(&["--rotate-session-key"]);
    let (third, kept, named) = session_keys();
    assert!(
        text(&out).contains("rotated: a signs now"),
        "{}",
        text(&out)
    );
    assert_ne!(third, first, "a rotation writes a fresh key");
    assert_eq!((kept, named.as_deref()), (second, Some(&b"a"[..])));

    // A later edit of fastly.toml's [setup] config items reaches the deployed store (a
    // publish applies [setup] only when it creates the service).
    let manifest = fs::read_to_string(dir.join("fastly.toml")).expect("manifest");
    let mut doc: toml_edit::DocumentMut = manifest.parse().expect("TOML");
    doc["setup"]["config_stores"][CONFIG_STORE]["items"]["broadcast_interval_ms"]["value"] =
        toml_edit::value("750");
    fs::write(dir.join("fastly.toml"), doc.to_string()).expect("edit manifest");
    let out = configure_with(&[]);
    assert!(
        text(&out).contains("config item broadcast_interval_ms = \"750\" (from fastly.toml)"),
        "{}",
        text(&out)
    );
    let interval = api.with_state(|s| {
        s.config_stores
            .iter()
            .find(|st| st.name == CONFIG_STORE)
            .and_then(|st| st.entries.get("broadcast_interval_ms").cloned())
    });
    assert_eq!(interval.as_deref(), Some(&b"750"[..]));
    assert!(text(&configure_with(&[])).contains("config items are as fastly.toml sets them up"));

    // The token the Fastly CLI stored (`fastly auth login`) serves as well as the variable.
    let stored = run(
        Command::new(fastly_cli()).args(["auth", "add", "owner", "--api-token", API_TOKEN]),
        &api,
        &dir,
    );
    assert!(stored.status.success(), "{}", text(&stored));
    run(
        Command::new(fastly_cli()).args(["auth", "use", "owner"]),
        &api,
        &dir,
    );
    let out = run(
        configure()
            .arg("--publish-token-file")
            .arg(dir.join("publish-token"))
            .env_remove("FASTLY_API_TOKEN"),
        &api,
        &dir,
    );
    assert!(
        out.status.success(),
        "with the stored token: {}",
        text(&out)
    );

    // Teardown asks first; then the service and its stores go (the KV store emptied first),
    // fastly.toml forgets the service, and the owner is told which token to revoke.
    api.with_state_mut(|s| {
        let kv = s
            .kv_stores
            .iter_mut()
            .find(|st| st.name == KV_STORE)
            .expect("kv");
        kv.entries.insert("registry/docs".into(), b"{}".to_vec());
        kv.entries.insert("site/docs/p/1/0/ab".into(), Vec::new());
    });
    let refused = run(Command::new(&liveuser).arg("teardown"), &api, &dir);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("run again with --yes"),
        "{}",
        text(&refused)
    );
    assert!(
        api.with_state(|s| s.service().is_some()),
        "nothing deleted yet"
    );
    let out = run(
        Command::new(&liveuser).args(["teardown", "--yes"]),
        &api,
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Revoke the fanout_publish_token"),
        "{}",
        text(&out)
    );
    api.with_state(|s| {
        assert!(s.service().is_none(), "the service is deleted");
        assert!(s.kv_stores.is_empty() && s.config_stores.is_empty() && s.secret_stores.is_empty());
    });
    assert_eq!(Manifest::read(&dir.join("fastly.toml")).service_id(), None);
    let again = run(
        Command::new(&liveuser).args(["teardown", "--yes"]),
        &api,
        &dir,
    );
    assert!(!again.status.success(), "nothing left to tear down");
    assert!(text(&again).contains("no service_id"), "{}", text(&again));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn an_account_without_fanout_is_told_so_and_a_missing_token_is_named() {
    let api = FastlyApi::start();
    let dir = deployed(&api, "lu-nofanout");
    // An account that cannot have Fanout (the real CLI's publish fails there, and
    // scripts/deploy says why): configure finds it off and cannot turn it on.
    api.with_state_mut(|s| {
        s.products.clear();
        s.fanout_unavailable = true;
    });
    let liveuser = project_root().join("scripts/liveuser");
    let out = run(Command::new(&liveuser).arg("configure"), &api, &dir);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("LiveUser needs Fanout") && text(&out).contains("trial accounts"),
        "{}",
        text(&out)
    );
    // With Fanout, a configure without a publish token names the exact token to make.
    api.with_state_mut(|s| s.fanout_unavailable = false);
    let out = run(Command::new(&liveuser).arg("configure"), &api, &dir);
    assert!(!out.status.success());
    let sid = Manifest::read(&dir.join("fastly.toml"))
        .service_id()
        .expect("service id")
        .to_string();
    assert!(
        text(&out).contains(&format!("purge_select scope, limited to service {sid}")),
        "{}",
        text(&out)
    );
    // No token at all: said before anything is asked of the API.
    let requests = api.with_state(|s| s.requests.len());
    let out = run(
        Command::new(&liveuser)
            .arg("configure")
            .env_remove("FASTLY_API_TOKEN"),
        &api,
        &dir,
    );
    assert!(text(&out).contains("no Fastly API token"), "{}", text(&out));
    assert_eq!(api.with_state(|s| s.requests.len()), requests);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn scripts_deploy_says_what_is_missing_before_it_builds_or_publishes() {
    let dir = std::env::temp_dir().join(format!("lu-nodeploy-{:x}", random_u64()));
    fs::create_dir_all(dir.join("config")).expect("temp dir");
    let out = Command::new(project_root().join("scripts/deploy"))
        .env_remove("FASTLY_API_TOKEN")
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("scripts/deploy runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("no Fastly API token: run"),
        "{}",
        text(&out)
    );
    assert!(
        !text(&out).contains("Pushpin") && !text(&out).contains("Viceroy"),
        "publishing sets up neither: {}",
        text(&out)
    );
    let _ = fs::remove_dir_all(&dir);
}
