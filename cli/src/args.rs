//! The command line, parsed and checked before anything is sent: a bad site id, a floor that
//! is not a number or a flag without its value is a usage error (exit 2) that changes nothing.

pub const USAGE: &str = "\
usage:
  liveuser configure [--publish-token-file F] [--admin-token-file F]
                     [--generate-admin-token F] [--replace] [--rotate-session-key]
                     [--self-domain D]
      finish a deploy (scripts/deploy runs it): Fanout checked, the self backend,
      the secrets, the SSE session key; safe to run again
  liveuser teardown --yes          delete the deployed service and its stores
  liveuser sites add SITE [--origin URL]... [--min-count N] [--page PREFIX]...
                    [--new-dashboard-key]
      register SITE, or replace its settings: the page origins that may connect
      (default: any), the privacy floor (2 to 1000000; default: none), the page
      prefixes it counts pages under (default: every page); prints the address of
      its dashboard, whose key is made with the site (--new-dashboard-key: a new
      one, and the old stops opening it)
  liveuser sites list              every registered site id
  liveuser sites show SITE         a site's settings and its dashboard's address
  liveuser sites remove SITE       stop serving SITE
  liveuser hooks add SITE --url URL --above N [--hysteresis H]
      POST to URL when SITE's count reaches N, and when it falls below N - H
      (H: 0 to N-1, default 0); prints the signing secret, shown this once
  liveuser hooks list SITE         a site's webhooks
  liveuser hooks remove SITE ID    remove one

options (any command):
  --service URL            the service (default: $LIVEUSER_SERVICE, or the local
                           stack at http://127.0.0.1:7676)
  --admin-token-file FILE  a file whose first line is the admin token (default:
                           $LIVEUSER_ADMIN_TOKEN; for the local stack, fastly.toml's)";

/// A usage error: what was wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct Usage(pub String);

/// Where the service is, as given.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TargetArgs {
    pub service: Option<String>,
    pub admin_token_file: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Add {
        site: String,
        origins: Vec<String>,
        min_count: Option<u64>,
        pages: Vec<String>,
        new_dashboard_key: bool,
    },
    List,
    Show(String),
    Remove(String),
}

/// What `hooks` is asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum HookAction {
    Add {
        site: String,
        url: String,
        above: u64,
        hysteresis: Option<u64>,
    },
    List(String),
    Remove {
        site: String,
        id: String,
    },
}

/// Which of the admin API's commands the words name.
enum Chosen {
    Sites(Action),
    Hooks(HookAction),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Sites {
        target: TargetArgs,
        action: Action,
    },
    Hooks {
        target: TargetArgs,
        action: HookAction,
    },
    Configure(crate::fastly::configure::Options),
    Teardown {
        confirmed: bool,
    },
}

/// The most a privacy floor may be (as the service takes it).
const MAX_MIN_COUNT: u64 = 1_000_000;

/// The service's rule for a site id: 1 to 64 of `A-Z a-z 0-9 . _ -`, not only dots.
pub fn check_site(site: &str) -> Result<(), Usage> {
    let ok = !site.is_empty()
        && site.len() <= 64
        && site
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !site.bytes().all(|b| b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Usage(format!(
            "{site:?} is not a site id (1-64 of A-Z a-z 0-9 . _ -, not only dots)"
        )))
    }
}

/// A flag's whole number, at least `min`.
fn whole(flag: &str, raw: &str, min: u64) -> Result<u64, Usage> {
    raw.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n >= min)
        .ok_or_else(|| {
            Usage(format!(
                "{flag} must be a whole number of at least {min} (got {raw:?})"
            ))
        })
}

pub fn parse(argv: &[String]) -> Result<Command, Usage> {
    let mut target = TargetArgs::default();
    let mut words = Vec::new();
    let mut origins = Vec::new();
    let mut pages = Vec::new();
    let mut min_count = None;
    let mut new_dashboard_key = false;
    let mut url = None;
    let mut above = None;
    let mut hysteresis = None;
    let mut deploy = crate::fastly::configure::Options::default();
    let mut deploy_flags = false;
    let mut confirmed = false;
    let mut rest = argv.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| rest.next().cloned())
                .ok_or_else(|| Usage(format!("{name} needs a value")))
        };
        match flag {
            "-h" | "--help" | "help" => return Ok(Command::Help),
            "--service" => target.service = Some(value(flag)?),
            "--admin-token-file" => target.admin_token_file = Some(value(flag)?),
            "--publish-token-file" => {
                deploy.publish_token_file = Some(value(flag)?);
                deploy_flags = true;
            }
            "--generate-admin-token" => {
                deploy.generate_admin_token = Some(value(flag)?);
                deploy_flags = true;
            }
            "--self-domain" => {
                deploy.self_domain = Some(value(flag)?);
                deploy_flags = true;
            }
            "--replace" => {
                deploy.replace = true;
                deploy_flags = true;
            }
            "--rotate-session-key" => {
                deploy.rotate_session_key = true;
                deploy_flags = true;
            }
            "--yes" => confirmed = true,
            "--origin" => origins.push(value(flag)?),
            "--page" => pages.push(value(flag)?),
            "--new-dashboard-key" => new_dashboard_key = true,
            "--min-count" => {
                let raw = value(flag)?;
                let n = raw
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (2..=MAX_MIN_COUNT).contains(n))
                    .ok_or_else(|| {
                        Usage(format!(
                            "--min-count must be a whole number from 2 to {MAX_MIN_COUNT} (got {raw:?})"
                        ))
                    })?;
                min_count = Some(n);
            }
            "--url" => url = Some(value(flag)?),
            "--above" => above = Some(whole(flag, &value(flag)?, 1)?),
            "--hysteresis" => hysteresis = Some(whole(flag, &value(flag)?, 0)?),
            f if f.starts_with('-') => return Err(Usage(format!("unknown option {f}"))),
            word => words.push(word.to_string()),
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let settings_given =
        !origins.is_empty() || !pages.is_empty() || min_count.is_some() || new_dashboard_key;
    let hook_given = url.is_some() || above.is_some() || hysteresis.is_some();
    if let ["configure"] = words[..] {
        if settings_given || hook_given || target.service.is_some() || confirmed {
            return Err(Usage("configure takes the deploy options only".into()));
        }
        deploy.admin_token_file = target.admin_token_file;
        return Ok(Command::Configure(deploy));
    }
    if let ["teardown"] = words[..] {
        return Ok(Command::Teardown { confirmed });
    }
    if deploy_flags || confirmed {
        return Err(Usage(
            "--publish-token-file, --generate-admin-token, --self-domain, --replace, --rotate-session-key and --yes go with configure or teardown".into(),
        ));
    }
    let chosen = match words[..] {
        [] => return Ok(Command::Help),
        ["sites", "add", site] => {
            check_site(site)?;
            Chosen::Sites(Action::Add {
                site: site.to_string(),
                origins,
                min_count,
                pages,
                new_dashboard_key,
            })
        }
        ["sites", "list"] => Chosen::Sites(Action::List),
        ["sites", "show", site] => {
            check_site(site)?;
            Chosen::Sites(Action::Show(site.to_string()))
        }
        ["sites", "remove", site] => {
            check_site(site)?;
            Chosen::Sites(Action::Remove(site.to_string()))
        }
        ["sites", "add" | "show" | "remove"] => {
            return Err(Usage(format!("sites {} needs a SITE", words[1])))
        }
        ["hooks", "add", site] => {
            check_site(site)?;
            let (Some(url), Some(above)) = (url.clone(), above) else {
                return Err(Usage("hooks add needs --url URL and --above N".into()));
            };
            if hysteresis.is_some_and(|h| h >= above) {
                return Err(Usage(format!(
                    "--hysteresis must be below --above ({above})"
                )));
            }
            Chosen::Hooks(HookAction::Add {
                site: site.to_string(),
                url,
                above,
                hysteresis,
            })
        }
        ["hooks", "list", site] => {
            check_site(site)?;
            Chosen::Hooks(HookAction::List(site.to_string()))
        }
        ["hooks", "remove", site, id] => {
            check_site(site)?;
            Chosen::Hooks(HookAction::Remove {
                site: site.to_string(),
                id: id.to_string(),
            })
        }
        ["hooks", "add" | "list"] => return Err(Usage(format!("hooks {} needs a SITE", words[1]))),
        ["hooks", "remove", ..] => return Err(Usage("hooks remove needs a SITE and an ID".into())),
        _ => return Err(Usage(format!("unknown command: {}", words.join(" ")))),
    };
    if settings_given && !matches!(chosen, Chosen::Sites(Action::Add { .. })) {
        return Err(Usage(
            "--origin, --min-count, --page and --new-dashboard-key go with sites add".into(),
        ));
    }
    if hook_given && !matches!(chosen, Chosen::Hooks(HookAction::Add { .. })) {
        return Err(Usage(
            "--url, --above and --hysteresis go with hooks add".into(),
        ));
    }
    Ok(match chosen {
        Chosen::Sites(action) => Command::Sites { target, action },
        Chosen::Hooks(action) => Command::Hooks { target, action },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Result<Command, Usage> {
        let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
        parse(&argv)
    }

    #[test]
    fn commands_and_their_options_parse() {
        assert_eq!(
            parsed("sites add docs --origin https://a.example --origin=https://b.example --min-count 5 --page /guide/ --service http://x"),
            Ok(Command::Sites {
                target: TargetArgs {
                    service: Some("http://x".into()),
                    admin_token_file: None
                },
                action: Action::Add {
                    site: "docs".into(),
                    origins: vec!["https://a.example".into(), "https://b.example".into()],
                    min_count: Some(5),
                    pages: vec!["/guide/".into()],
                    new_dashboard_key: false,
                }
            })
        );
        assert!(matches!(
            parsed("sites list"),
            Ok(Command::Sites {
                action: Action::List,
                ..
            })
        ));
        assert!(matches!(
            parsed("sites remove docs"),
            Ok(Command::Sites { action: Action::Remove(s), .. }) if s == "docs"
        ));
        assert_eq!(parsed("--help"), Ok(Command::Help));
        assert!(matches!(
            parsed("hooks add docs --url https://h.example/x --above 100 --hysteresis 10"),
            Ok(Command::Hooks { action: HookAction::Add { site, url, above: 100, hysteresis: Some(10) }, .. })
                if site == "docs" && url == "https://h.example/x"
        ));
        assert!(matches!(
            parsed("hooks remove docs hk_1"),
            Ok(Command::Hooks { action: HookAction::Remove { site, id }, .. }) if site == "docs" && id == "hk_1"
        ));
        assert_eq!(
            parsed("configure --publish-token-file p --admin-token-file a --rotate-session-key"),
            Ok(Command::Configure(crate::fastly::configure::Options {
                publish_token_file: Some("p".into()),
                admin_token_file: Some("a".into()),
                rotate_session_key: true,
                ..Default::default()
            }))
        );
        assert_eq!(
            parsed("teardown --yes"),
            Ok(Command::Teardown { confirmed: true })
        );
        assert_eq!(
            parsed("teardown"),
            Ok(Command::Teardown { confirmed: false })
        );
        assert_eq!(parsed(""), Ok(Command::Help));
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        for (line, says) in [
            (
                "sites add docs --min-count five",
                "--min-count must be a whole number",
            ),
            (
                "sites add docs --min-count 1",
                "--min-count must be a whole number",
            ),
            ("sites add docs --min-count", "--min-count needs a value"),
            ("sites add my%20site", "is not a site id"),
            ("sites add ...", "is not a site id"),
            ("sites add", "needs a SITE"),
            ("sites list --origin https://a.example", "go with sites add"),
            ("sites rename a b", "unknown command"),
            ("sites add docs --colour red", "unknown option --colour"),
            ("sites list --replace", "go with configure or teardown"),
            (
                "hooks add docs --url https://h.example --above many",
                "--above must be a whole number of at least 1",
            ),
            (
                "hooks add docs --url https://h.example --above 0",
                "--above must be a whole number of at least 1",
            ),
            (
                "hooks add docs --url https://h.example --above 5 --hysteresis 5",
                "--hysteresis must be below --above",
            ),
            ("hooks add docs --above 5", "needs --url URL and --above N"),
            ("hooks add", "needs a SITE"),
            ("hooks remove docs", "needs a SITE and an ID"),
            ("hooks list docs --above 3", "go with hooks add"),
            (
                "configure --origin https://a.example",
                "deploy options only",
            ),
        ] {
            let err = parsed(line).expect_err(line);
            assert!(err.0.contains(says), "{line}: {}", err.0);
        }
    }
}
