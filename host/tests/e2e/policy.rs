//! End-to-end tests of the logging policy (`[tenants.settings.policy]`):
//! the real host and components against the simulators, asserting what
//! was recorded and what the CRM simulator received.

use crate::common;
use anyhow::Context;

use chrono::{Datelike, TimeZone};
use common::*;
use connectzero::config::TenantOptions;
use connectzero::demo::{CallPlan, Placer, numbers};
use connectzero::testbed::World;
use connectzero_simulators::threecx::SimParty;
use guest_support::policy::{Action, BusinessHoursConfig, PolicyConfig};

/// Options with `policy` configured.
fn with_policy(policy: PolicyConfig) -> TenantOptions {
    options().policy(policy).build()
}

/// Place `plan`, tick until it is handled and return its recorded
/// (outcome, detail).
async fn handle(
    world: &World,
    placer: &mut Placer,
    plan: &CallPlan,
) -> anyhow::Result<(String, String)> {
    let placed = place(world, placer, plan);
    tick_until(world, 5, |w| {
        w.storage
            .call_outcome("demo", &placed.key)
            .unwrap()
            .is_some()
    })
    .await?;
    let record = world
        .storage
        .calls("demo")?
        .into_iter()
        .find(|r| r.call_key == placed.key)
        .context("the call is recorded")?;
    Ok((record.outcome, record.detail))
}

/// Run one call through a world with `policy` and assert it was skipped
/// with `reason` and nothing was posted.
async fn assert_skipped(policy: PolicyConfig, plan: CallPlan, reason: &str) -> anyhow::Result<()> {
    let (world, _) = seeded_world(with_policy(policy)).await?;
    let (outcome, detail) = handle(&world, &mut Placer::default(), &plan).await?;
    assert_eq!((outcome.as_str(), detail.as_str()), ("skipped", reason));
    assert!(world.crm.messages().is_empty(), "nothing is posted");
    Ok(())
}

#[tokio::test]
async fn an_outbound_no_answer_is_ignored_when_the_policy_says_so() -> anyhow::Result<()> {
    assert_skipped(
        PolicyConfig {
            outbound_no_answer: Action::Ignore,
            ..Default::default()
        },
        one_leg(1, ext("102"), outside(numbers::ELI), false, 0),
        "policy: outbound-no-answer ignored",
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_call_that_ended_in_voicemail_follows_the_voicemail_action() -> anyhow::Result<()> {
    let policy = PolicyConfig {
        voicemail: Some(Action::Ignore),
        ..Default::default()
    };
    let voicemail = one_leg(
        1,
        outside(numbers::DANA),
        SimParty::voicemail("999", "Voicemail", 0),
        true,
        30,
    );
    assert_skipped(policy.clone(), voicemail, "policy: voicemail ignored").await?;
    // A missed call that rang an extension is not a voicemail: posted.
    let (world, _) = seeded_world(with_policy(policy)).await?;
    let plain_missed = one_leg(2, outside(numbers::DANA), ext("101"), false, 20);
    let (outcome, _) = handle(&world, &mut Placer::default(), &plain_missed).await?;
    assert_eq!(outcome, "posted");
    Ok(())
}

#[tokio::test]
async fn a_blocked_number_is_never_posted_even_to_a_known_contact() -> anyhow::Result<()> {
    assert_skipped(
        PolicyConfig {
            blocked_numbers: vec![numbers::DANA.into()],
            ..Default::default()
        },
        one_leg(1, outside(numbers::DANA), ext("101"), true, 60),
        "blocked number",
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_call_from_the_pbxs_own_did_is_never_posted() -> anyhow::Result<()> {
    assert_skipped(
        PolicyConfig {
            own_numbers: vec!["+1 415 555 0100".into()],
            // Even with contact creation on, the PBX never becomes a contact.
            answered_inbound: Action::LogAndCreateContact,
            ..Default::default()
        },
        one_leg(1, outside("+14155550100"), ext("103"), true, 60),
        "PBX's own number",
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn an_answered_call_shorter_than_the_minimum_is_skipped() -> anyhow::Result<()> {
    assert_skipped(
        PolicyConfig {
            min_duration_secs: 10,
            ..Default::default()
        },
        one_leg(1, outside(numbers::DANA), ext("101"), true, 5),
        "shorter than 10 s",
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_call_outside_business_hours_follows_outside_hours() -> anyhow::Result<()> {
    let (mut world, _) = seeded_world(defaults()).await?;
    let mut placer = Placer::default();
    let plan = one_leg(1, outside(numbers::DANA), ext("101"), true, 60);
    let placed = place(&world, &mut placer, &plan);
    // Open every day but the one the call started on (in UTC+02:00), so
    // the test does not depend on the time it runs.
    let start_ms: i64 = placed.key.rsplit('@').next().unwrap().parse()?;
    let offset = chrono::FixedOffset::east_opt(2 * 3600).context("a valid UTC offset")?;
    let call_day = offset
        .timestamp_millis_opt(start_ms)
        .single()
        .context("an unambiguous time")?
        .weekday();
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i as u32 != call_day.num_days_from_monday())
        .map(|(_, d)| d.to_string())
        .collect();
    world.reconfigure(|c| {
        c.settings.policy = Some(PolicyConfig {
            business_hours: Some(BusinessHoursConfig {
                days,
                start: "00:00".into(),
                end: "23:59".into(),
                utc_offset: Some("+02:00".into()),
                time_zone: None,
            }),
            outside_hours: Action::Ignore,
            ..Default::default()
        })
    })?;
    tick_until(&world, 5, |w| {
        w.storage
            .call_outcome("demo", &placed.key)
            .unwrap()
            .is_some()
    })
    .await?;
    let record = &world.storage.calls("demo")?[0];
    assert_eq!(
        (record.outcome.as_str(), record.detail.as_str()),
        ("skipped", "outside business hours")
    );
    assert!(world.crm.messages().is_empty());
    Ok(())
}

#[tokio::test]
async fn log_and_create_contact_creates_the_contact_for_an_unknown_number() -> anyhow::Result<()> {
    let (world, _) = seeded_world(with_policy(PolicyConfig {
        missed: Action::LogAndCreateContact,
        ..Default::default()
    }))
    .await?;
    let mut placer = Placer::default();
    // The tenant's no_match_policy stays "skip": an answered call from an
    // unknown number is still skipped...
    let (outcome, detail) = handle(
        &world,
        &mut placer,
        &one_leg(1, outside("+14155550177"), ext("103"), true, 50),
    )
    .await?;
    assert_eq!((outcome.as_str(), detail.as_str()), ("skipped", "no-match"));
    // ...while a missed one creates the contact, as the policy says.
    let contacts_before = world.crm.contacts().len();
    let (outcome, _) = handle(
        &world,
        &mut placer,
        &one_leg(2, outside("+14155550188"), ext("103"), false, 0),
    )
    .await?;
    assert_eq!(outcome, "posted");
    let created: Vec<_> = world
        .crm
        .contacts()
        .into_iter()
        .filter(|c| c.phone.as_deref() == Some("+14155550188"))
        .collect();
    assert_eq!(created.len(), 1);
    assert_eq!(world.crm.contacts().len(), contacts_before + 1);
    let messages = world.crm.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].contact_id, created[0].id);
    Ok(())
}

#[tokio::test]
async fn an_empty_policy_behaves_exactly_like_no_policy() -> anyhow::Result<()> {
    for options in [defaults(), with_policy(PolicyConfig::default())] {
        let (world, contacts) = seeded_world(options).await?;
        let mut placer = Placer::default();
        let plans = [
            one_leg(1, outside(numbers::DANA), ext("101"), true, 1),
            one_leg(2, ext("102"), ext("101"), true, 30),
            one_leg(3, outside("+14155550177"), ext("103"), false, 0),
            one_leg(4, ext("102"), outside(numbers::ELI), false, 0),
        ];
        let mut results = Vec::new();
        for plan in &plans {
            results.push(handle(&world, &mut placer, plan).await?);
        }
        let got: Vec<(&str, &str)> = results
            .iter()
            .map(|(o, d)| (o.as_str(), if o == "skipped" { d.as_str() } else { "" }))
            .collect();
        assert_eq!(
            got,
            [
                ("posted", ""),
                ("skipped", "internal-call"),
                ("skipped", "no-match"),
                ("posted", ""),
            ]
        );
        let posted_to: Vec<_> = world
            .crm
            .messages()
            .into_iter()
            .map(|m| m.contact_id)
            .collect();
        assert_eq!(
            posted_to,
            [contacts["Dana Fox"].clone(), contacts["Eli Grant"].clone()]
        );
    }
    Ok(())
}

#[test]
fn a_bad_policy_in_the_configuration_says_what_to_fix() -> anyhow::Result<()> {
    let toml = r#"
        [[tenants]]
        id = "acme"
        [tenants.pbx]
        base_url = "https://pbx.example.com"
        client_id = "cz"
        [tenants.crm]
        location_id = "loc"
        conversation_provider_id = "prov"
        client_id = "app"
        [tenants.settings.policy]
        outbound_no_answer = "ignore"
        [tenants.settings.policy.business_hours]
        days = ["mon"]
        start = "9am"
        end = "17:00"
    "#;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("c.toml");
    std::fs::write(&path, toml)?;
    let error = format!(
        "{:#}",
        connectzero::config::HostConfig::load(&path).expect_err("refused")
    );
    assert!(error.contains("policy.business_hours.start"), "{error}");
    assert!(error.contains("HH:MM"), "{error}");
    Ok(())
}

#[tokio::test]
async fn the_match_dry_run_says_a_blocked_number_would_not_be_posted() -> anyhow::Result<()> {
    let (world, _) = seeded_world(with_policy(PolicyConfig {
        blocked_numbers: vec![numbers::DANA.into()],
        ..Default::default()
    }))
    .await?;
    let dry = connectzero::dry_run::run(
        &world.pipeline,
        &world.tenant,
        numbers::DANA,
        connectzero::bindings::types::Direction::Inbound,
    )
    .await?;
    assert!(
        dry.text
            .contains("policy: blocked number (the call would not be posted)"),
        "{}",
        dry.text
    );
    let dry = connectzero::dry_run::run(
        &world.pipeline,
        &world.tenant,
        numbers::ELI,
        connectzero::bindings::types::Direction::Inbound,
    )
    .await?;
    assert!(!dry.text.contains("policy:"), "{}", dry.text);
    Ok(())
}
