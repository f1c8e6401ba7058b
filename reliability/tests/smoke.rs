//! A short version of every reliability figure, in the test command: the full run is
//! `scripts/reliability`.

use std::time::Duration;

use liveuser_reliability::{attacks, census_forgery, forgery, inputs, scenarios};

#[test]
fn generated_inputs_meet_only_values_and_clear_errors() {
    for figure in [
        inputs::codec(20_000, 1),
        inputs::client_messages(20_000, 2),
        inputs::grip_sig(20_000, 3),
        inputs::loader_params(20_000, 4),
    ] {
        assert!(figure.holds(), "{figure:?}");
        assert!(
            figure.values > 0 && figure.errors > 0,
            "both outcomes are exercised: {figure:?}"
        );
    }
}

#[test]
fn no_forged_signature_is_accepted_and_every_genuine_one_is() {
    let figure = forgery::forgeries(10_000, 5);
    assert!(figure.holds(), "{figure:?}");
    assert!(figure.by_kind.iter().all(|(_, tried, _)| *tried == 1_000));
}

#[test]
fn no_forged_census_request_is_accepted_and_every_genuine_one_is() {
    let figure = census_forgery::census_forgeries(8_000, 5);
    assert!(figure.holds(), "{figure:?}");
    assert!(figure.by_kind.iter().all(|(_, tried, _)| *tried == 1_000));
    assert!(figure.statuses.iter().all(|(s, _)| *s == 400 || *s == 403));
}

#[test]
fn first_visits_at_once_are_counted_exactly() {
    let figure = scenarios::visits(300, 60);
    assert!(figure.holds(), "{figure:?}");
}

#[test]
fn a_killed_pushpin_leaves_no_phantoms_once_presence_runs_out() {
    let figure = scenarios::pushpin_killed(60, 4);
    assert!(figure.holds(), "{figure:?}");
}

#[test]
fn held_sockets_stay_counted() {
    let figure = scenarios::held(60, Duration::from_secs(20), 4);
    assert!(figure.holds(), "{figure:?}");
}

#[test]
fn a_publish_outage_drops_no_socket_and_counts_recover() {
    let figure = scenarios::publish_down(40, Duration::from_secs(8), 6);
    assert!(figure.holds(), "{figure:?}");
}

#[test]
fn a_flood_from_one_address_is_capped_and_others_are_served() {
    let figure = scenarios::flood(100, 200);
    assert!(figure.holds(), "{figure:?}");
}

#[test]
fn attacks_get_no_more_than_their_bounds() {
    let figure = attacks::attacks(6);
    assert!(figure.holds(), "{figure:?}");
}
