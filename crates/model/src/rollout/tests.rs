use super::*;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + Duration::seconds(seconds)
}

fn rollout(planned: u32, options: RolloutOptions) -> Rollout {
    Rollout {
        id: "r-1".into(),
        target_version: "v2".into(),
        previous_version: "v1".into(),
        selection: Selection::default(),
        options,
        state: RolloutState::Running,
        reason: None,
        created_by: "ops".into(),
        created_at: at(0).to_rfc3339(),
        updated_at: at(0).to_rfc3339(),
        planning_cursor: None,
        planned,
        planning_done: true,
        accepted_failures: 0,
        current_set: false,
        catch_up_done: false,
        catch_up_cursor: None,
        counts: Counts::default(),
        version: 1,
    }
}

fn members(states: &[MemberState], settled_at: i64) -> Vec<Member> {
    states
        .iter()
        .enumerate()
        .map(|(i, state)| Member {
            tenant_id: format!("t{i:03}"),
            order: format!("{i:06}"),
            from_version: "v1".into(),
            state: *state,
            reason: None,
            updated_at: at(settled_at).to_rfc3339(),
        })
        .collect()
}

fn options(canary: u32, concurrency: u32, tolerance: u32, bake: u64) -> RolloutOptions {
    RolloutOptions {
        canary: Amount::Count(canary),
        bake_seconds: bake,
        growth: 2,
        wave_bake_seconds: 0,
        max_concurrency: Amount::Count(concurrency),
        failure_tolerance: Amount::Count(tolerance),
        auto_rollback: true,
        alarms: Vec::new(),
    }
}

use MemberState::*;

#[test]
fn amounts_parse_and_round_down_like_stacksets() {
    assert_eq!(Amount::parse("10"), Ok(Amount::Count(10)));
    assert_eq!(Amount::parse(" 5% "), Ok(Amount::Percent(5)));
    for bad in ["", "-1", "101%", "x", "5.5", "%"] {
        assert!(Amount::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(Amount::Percent(10).of(25), 2);
    assert_eq!(Amount::Percent(1).of(50), 0);
    assert_eq!(Amount::Count(3).of(1), 3);
    assert_eq!(Amount::Percent(100).of(7), 7);
    let json = serde_json::to_string(&Amount::Percent(5)).unwrap();
    assert_eq!(json, "\"5%\"");
    assert_eq!(
        serde_json::from_str::<Amount>(&json).unwrap(),
        Amount::Percent(5)
    );
    assert!(serde_json::from_str::<Amount>("\"200%\"").is_err());
}

#[test]
fn waves_start_with_the_canary_and_grow() {
    let p = plan(100, &options(3, 10, 0, 0));
    assert_eq!(p.waves, vec![3, 6, 12, 24, 48, 7]);
    assert_eq!(p.waves.iter().sum::<usize>(), 100);
    assert_eq!(p.max_concurrency, 10);
    assert_eq!(p.wave_of(0), 0);
    assert_eq!(p.wave_of(2), 0);
    assert_eq!(p.wave_of(3), 1);
    assert_eq!(p.wave_of(99), 5);
    assert_eq!(p.wave_of(100), 6, "catch-up members form one more wave");
    // Percentages: a 1 % canary of 50 is still one tenant; a 0 % concurrency still moves one.
    let mut o = options(1, 1, 0, 0);
    o.canary = Amount::Percent(1);
    o.max_concurrency = Amount::Percent(1);
    o.failure_tolerance = Amount::Percent(10);
    let p = plan(50, &o);
    assert_eq!(p.waves[0], 1);
    assert_eq!(p.max_concurrency, 1);
    assert_eq!(p.failure_tolerance, 5);
    assert!(plan(0, &o).waves.is_empty());
    // Growth 1: equal waves.
    o.growth = 1;
    o.canary = Amount::Count(4);
    assert_eq!(plan(10, &o).waves, vec![4, 4, 2]);
}

#[test]
fn every_planned_size_is_covered_exactly_once() {
    for planned in 0..300 {
        for canary in [1, 2, 5, 40] {
            let p = plan(planned, &options(canary, 7, 0, 0));
            assert_eq!(p.waves.iter().sum::<usize>(), planned);
            assert!(p.waves.iter().all(|w| *w > 0));
            for position in 0..planned {
                assert!(p.wave_of(position) < p.waves.len());
            }
        }
    }
}

#[test]
fn the_canary_goes_first_and_alone() {
    let r = rollout(10, options(2, 5, 1, 600));
    let m = members(&[Pending; 10], 0);
    assert_eq!(
        next_step(&r, &m, at(0)),
        Step::Move {
            candidates: vec![0, 1],
            slots: 5
        }
    );
    // Canary in flight: the rest waits.
    let mut m = members(&[Moving, Moving], 0);
    m.extend(members(&[Pending; 8], 0));
    assert_eq!(next_step(&r, &m, at(10)), Step::Wait { until: None });
}

#[test]
fn the_next_waves_wait_for_the_bake() {
    let r = rollout(10, options(2, 5, 1, 600));
    let mut m = members(&[Done, Done], 100);
    m.extend(members(&[Pending; 8], 0));
    assert_eq!(
        next_step(&r, &m, at(300)),
        Step::Wait {
            until: Some(at(700))
        }
    );
    // Baked: every later wave flows under the concurrency limit (no wave bake).
    assert_eq!(
        next_step(&r, &m, at(700)),
        Step::Move {
            candidates: (2..10).collect(),
            slots: 5
        }
    );
}

#[test]
fn concurrency_limits_what_moves_at_once() {
    let r = rollout(10, options(1, 3, 5, 0));
    let mut m = members(&[Done, Moving, Moving], 0);
    m.extend(members(&[Pending; 7], 0));
    assert_eq!(
        next_step(&r, &m, at(0)),
        Step::Move {
            candidates: (3..10).collect(),
            slots: 1
        }
    );
    let mut m = members(&[Done, Moving, Moving, Moving], 0);
    m.extend(members(&[Pending; 6], 0));
    assert_eq!(next_step(&r, &m, at(0)), Step::Wait { until: None });
}

#[test]
fn a_wave_bake_makes_each_wave_settle_first() {
    let mut o = options(1, 10, 5, 0);
    o.wave_bake_seconds = 60;
    let r = rollout(7, o);
    // Waves 1, 2, 4. Canary done (no canary bake), wave 2 in flight: wave 3 waits.
    let mut m = members(&[Done, Done, Moving], 0);
    m.extend(members(&[Pending; 4], 0));
    assert_eq!(next_step(&r, &m, at(0)), Step::Wait { until: None });
    let mut m = members(&[Done, Done, Done], 0);
    m.extend(members(&[Pending; 4], 0));
    assert_eq!(
        next_step(&r, &m, at(30)),
        Step::Wait {
            until: Some(at(60))
        }
    );
    assert_eq!(
        next_step(&r, &m, at(60)),
        Step::Move {
            candidates: vec![3, 4, 5, 6],
            slots: 10
        }
    );
}

#[test]
fn failures_within_the_tolerance_go_on_and_one_more_halts() {
    let r = rollout(10, options(1, 10, 2, 0));
    let mut states = vec![Done, Failed, Failed];
    states.extend([Pending; 7]);
    assert!(matches!(
        next_step(&r, &members(&states, 0), at(0)),
        Step::Move { .. }
    ));
    states[3] = Failed;
    let Step::Halt { reason } = next_step(&r, &members(&states, 0), at(0)) else {
        panic!("expected a halt");
    };
    assert!(reason.contains("3 tenants failed"), "{reason}");
    assert!(reason.contains("tolerance of 2"), "{reason}");
}

#[test]
fn a_canary_failure_halts_whatever_the_tolerance() {
    let r = rollout(10, options(2, 10, 5, 0));
    let mut states = vec![Done, Failed];
    states.extend([Pending; 8]);
    let Step::Halt { reason } = next_step(&r, &members(&states, 0), at(0)) else {
        panic!("expected a halt");
    };
    assert!(reason.contains("canary"), "{reason}");
}

#[test]
fn a_whole_fleet_rollout_sets_current_then_catches_up_then_completes() {
    let mut r = rollout(3, options(1, 10, 0, 0));
    let m = members(&[Done, Skipped, Done], 0);
    assert_eq!(next_step(&r, &m, at(0)), Step::SetCurrent);
    r.current_set = true;
    assert_eq!(next_step(&r, &m, at(0)), Step::CatchUp);
    r.catch_up_done = true;
    assert_eq!(next_step(&r, &m, at(0)), Step::Complete);
    // A selection completes without touching the fleet's current version.
    let mut r = rollout(3, options(1, 10, 0, 0));
    r.selection.tenants = vec!["t000".into()];
    assert_eq!(next_step(&r, &m, at(0)), Step::Complete);
}

#[test]
fn tenants_found_by_the_catch_up_are_moved_after_the_plan() {
    let mut r = rollout(2, options(1, 10, 0, 0));
    r.current_set = true;
    let m = members(&[Done, Done, Pending], 0);
    assert_eq!(
        next_step(&r, &m, at(0)),
        Step::Move {
            candidates: vec![2],
            slots: 10
        }
    );
}

#[test]
fn rollback_moves_back_every_tenant_moved_and_ends_rolled_back() {
    let mut r = rollout(5, options(1, 2, 0, 0));
    r.state = RolloutState::RollingBack;
    // Skipped members are looked at too: one may have been moved before it was pinned.
    let m = members(&[Done, Failed, Moving, Pending, Skipped], 0);
    assert_eq!(
        next_step(&r, &m, at(0)),
        Step::MoveBack {
            candidates: vec![0, 1, 2, 4],
            slots: 2
        }
    );
    let m = members(&[RollingBack, RollingBack, Moving, Pending, Skipped], 0);
    assert_eq!(next_step(&r, &m, at(0)), Step::Wait { until: None });
    let m = members(
        &[RolledBack, RollbackFailed, RolledBack, Pending, RolledBack],
        0,
    );
    assert_eq!(next_step(&r, &m, at(0)), Step::RolledBack);
}

#[test]
fn a_rollback_after_the_target_was_made_current_restores_the_previous_version_first() {
    let mut r = rollout(3, options(1, 2, 0, 0));
    r.state = RolloutState::RollingBack;
    r.current_set = true;
    // Before any member moves back: a tenant created from now on starts on the previous one.
    let m = members(&[Done, Done, Done], 0);
    assert_eq!(next_step(&r, &m, at(0)), Step::RestoreCurrent);
    r.current_set = false;
    assert_eq!(
        next_step(&r, &m, at(0)),
        Step::MoveBack {
            candidates: vec![0, 1, 2],
            slots: 2
        }
    );
}

#[test]
fn paused_halted_and_finished_rollouts_move_nothing() {
    for state in [
        RolloutState::Paused,
        RolloutState::Halted,
        RolloutState::Completed,
        RolloutState::Cancelled,
        RolloutState::RolledBack,
    ] {
        let mut r = rollout(3, options(1, 10, 0, 0));
        r.state = state;
        assert_eq!(next_step(&r, &members(&[Pending; 3], 0), at(0)), Step::Idle);
    }
}

#[test]
fn commands_follow_the_state_machine() {
    use RolloutState::*;
    assert_eq!(Command::Pause.apply(Running), Ok(Paused));
    assert_eq!(Command::Resume.apply(Paused), Ok(Running));
    assert_eq!(Command::Resume.apply(Halted), Ok(Running));
    assert_eq!(Command::Rollback.apply(Completed), Ok(RollingBack));
    assert_eq!(Command::Cancel.apply(Halted), Ok(Cancelled));
    // A rollback that cannot finish (an operator must look) can be stopped.
    assert_eq!(Command::Cancel.apply(RollingBack), Ok(Cancelled));
    // Repeats are no-ops, so a retried command is harmless.
    assert_eq!(Command::Pause.apply(Paused), Ok(Paused));
    assert_eq!(Command::Rollback.apply(RollingBack), Ok(RollingBack));
    for (command, state) in [
        (Command::Resume, Completed),
        (Command::Pause, RolledBack),
        (Command::Cancel, Completed),
        (Command::Resume, RollingBack),
    ] {
        let error = command.apply(state).unwrap_err();
        assert!(error.contains(state.as_str()), "{error}");
    }
}

#[test]
fn selections_pick_by_name_config_and_stable_share() {
    let config: BTreeMap<String, ConfigValue> =
        [("tier".to_owned(), ConfigValue::String("gold".into()))].into();
    let mut s = Selection::default();
    assert!(s.is_whole_fleet());
    assert!(s.selects("r", "a", &config));
    s.config.insert("tier".into(), "gold".into());
    assert!(!s.is_whole_fleet());
    assert!(s.selects("r", "a", &config));
    s.config.insert("tier".into(), "silver".into());
    assert!(!s.selects("r", "a", &config));
    let s = Selection {
        percent: Some(30),
        ..Selection::default()
    };
    let picked = (0..1000)
        .filter(|i| s.selects("r-1", &format!("t{i}"), &config))
        .count();
    assert!((240..360).contains(&picked), "{picked}");
    assert_eq!(
        (0..50)
            .filter(|i| s.selects("r-1", &format!("t{i}"), &config))
            .count(),
        (0..50)
            .filter(|i| s.selects("r-1", &format!("t{i}"), &config))
            .count()
    );
}

#[test]
fn options_are_checked() {
    assert!(RolloutOptions::default().check().is_ok());
    let o = RolloutOptions {
        canary: Amount::Percent(0),
        max_concurrency: Amount::Count(0),
        bake_seconds: 8 * 24 * 3600,
        ..RolloutOptions::default()
    };
    assert_eq!(o.check().unwrap_err().len(), 3);
}

#[test]
fn the_canary_settles_first_even_without_a_bake() {
    let r = rollout(6, options(1, 10, 0, 0));
    let mut m = members(&[Moving], 0);
    m.extend(members(&[Pending; 5], 0));
    assert_eq!(next_step(&r, &m, at(0)), Step::Wait { until: None });
    m[0].state = Done;
    assert_eq!(
        next_step(&r, &m, at(0)),
        Step::Move {
            candidates: (1..6).collect(),
            slots: 10
        }
    );
}

#[test]
fn resuming_a_halt_accepts_its_failures_and_counts_anew() {
    let mut r = rollout(10, options(1, 10, 1, 0));
    let mut states = vec![Done, Failed, Failed];
    states.extend([Pending; 7]);
    assert!(matches!(
        next_step(&r, &members(&states, 0), at(0)),
        Step::Halt { .. }
    ));
    r.accepted_failures = 2;
    assert!(matches!(
        next_step(&r, &members(&states, 0), at(0)),
        Step::Move { .. }
    ));
    states[3] = Failed;
    assert!(matches!(
        next_step(&r, &members(&states, 0), at(0)),
        Step::Move { .. }
    ));
    states[4] = Failed;
    let Step::Halt { reason } = next_step(&r, &members(&states, 0), at(0)) else {
        panic!("two new failures pass a tolerance of one");
    };
    assert!(reason.contains("since the 2 accepted"), "{reason}");
}

#[test]
fn a_breached_alarm_halts_a_running_rollout_in_its_bake_and_an_unreadable_one_moves_nobody() {
    let r = rollout(10, options(1, 10, 0, 600));
    let mut states = vec![Done];
    states.extend([Pending; 9]);
    let baking = members(&states, 0);
    // Healthy: the canary bakes (nothing to do until the bake ends).
    assert!(matches!(
        next_step_watching(&r, &baking, at(60), &Health::Healthy),
        Step::Wait { until: Some(_) }
    ));
    let breached = Health::Breached {
        alarm: "api-5xx".into(),
        reason: "Threshold Crossed: 1 datapoint [7.0] was greater than the threshold (5.0)".into(),
    };
    let Step::Halt { reason } = next_step_watching(&r, &baking, at(60), &breached) else {
        panic!("an alarm in ALARM halts the rollout");
    };
    assert!(
        reason.starts_with("alarm api-5xx is in ALARM: Threshold Crossed"),
        "{reason}"
    );
    // After the bake, an unreadable alarm moves no tenant; it does not halt either.
    let unknown = Health::Unknown("throttled".into());
    assert_eq!(
        next_step_watching(&r, &baking, at(700), &unknown),
        Step::Wait { until: None }
    );
    assert!(matches!(
        next_step_watching(&r, &baking, at(700), &Health::Healthy),
        Step::Move { .. }
    ));
    // Nor does it complete unwatched: every member done, the alarms unreadable.
    let done = members(&[Done, Done], 0);
    assert_eq!(
        next_step_watching(&rollout(2, options(1, 10, 0, 0)), &done, at(700), &unknown),
        Step::Wait { until: None }
    );
    let gone = Health::Gone {
        alarm: "api-5xx".into(),
    };
    let Step::Halt { reason } = next_step_watching(&r, &baking, at(60), &gone) else {
        panic!("a deleted alarm halts");
    };
    assert!(reason.contains("api-5xx no longer exists"), "{reason}");
    // A failure still halts whatever the alarms say.
    let failed = members(&[Failed, Pending, Pending], 0);
    assert!(matches!(
        next_step_watching(
            &rollout(3, options(1, 10, 0, 600)),
            &failed,
            at(0),
            &unknown
        ),
        Step::Halt { .. }
    ));
    // Only a running rollout watches: a paused one stays paused.
    let mut paused = r.clone();
    paused.state = RolloutState::Paused;
    assert_eq!(
        next_step_watching(&paused, &baking, at(60), &breached),
        Step::Idle
    );
}

#[test]
fn alarm_names_are_checked_as_cloudwatch_checks_them() {
    let o = RolloutOptions {
        alarms: vec!["ok-name".into(), String::new(), "x".repeat(256)],
        ..RolloutOptions::default()
    };
    let errors = o.check().unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("alarm name \"\""), "{errors:?}");
    let many = RolloutOptions {
        alarms: (0..=MAX_ALARMS).map(|i| format!("a{i}")).collect(),
        ..RolloutOptions::default()
    };
    assert_eq!(
        many.check().unwrap_err(),
        ["at most 100 alarms are watched"]
    );
}
