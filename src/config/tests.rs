//! Tests of loading as a whole: layers, validation, the shipped file.

use std::path::{Path, PathBuf};

use super::*;

fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
    let owned: Vec<_> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    owned.into_iter()
}

fn overrides(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn defaults() -> Config {
    load_str("", env(&[]), &[]).expect("the built-in defaults are valid")
}

fn errors_of(text: &str) -> ConfigErrors {
    load_str(text, env(&[]), &[]).expect_err("configuration should be rejected")
}

fn shipped_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_PATH)
}

/// A file in the temp directory, unique to this process and `name`.
fn temp_file(name: &str, content: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("driftwarden-config-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn defaults_are_valid_and_documented_values() {
    let config = defaults();

    assert_eq!(config.service.http_listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.kafka.prediction_topics[0].as_str(), "predictions");
    assert_eq!(
        config.monitor.window,
        Window::Count(1000.try_into().unwrap())
    );
    assert_eq!(
        config.monitor.decision,
        Decision::Calibrated {
            target_run_length: 1_000_000.try_into().unwrap()
        }
    );
    assert_eq!(config.alerts.channels, [ChannelKind::Webhook]);
    assert_eq!(config.channels, ChannelsConfig::default());
    assert!(config.models.is_empty());
}

#[test]
fn shipped_file_equals_the_defaults() {
    let shipped = load(Some(&shipped_path()), env(&[]), &[]);

    assert_eq!(shipped, Ok(defaults()));
}

/// The example model in the shipped file is commented out so that the file
/// equals the defaults; uncommented, it must be valid and mean what its
/// comments say.
#[test]
fn shipped_example_model_is_valid() {
    let text = std::fs::read_to_string(shipped_path()).unwrap();
    let (_, rest) = text.split_once("# --- example model ---\n").unwrap();
    let (example, _) = rest.split_once("# --- end of example model ---").unwrap();
    let example: String = example.lines().map(|l| format!("{}\n", &l[2..])).collect();

    let config = load_str(&format!("{text}\n{example}"), env(&[]), &[]).unwrap();

    let model = config.model("churn").unwrap();
    assert_eq!(model.baseline, Path::new("baselines/churn.json"));
    assert_eq!(model.versions.len(), 1);
    assert_eq!(
        model.monitor.window,
        Window::Count(2000.try_into().unwrap())
    );
    assert_eq!(model.monitor.persistence.for_events, 100);
    assert_eq!(model.monitor.min_window, config.monitor.min_window);
    assert_eq!(model.prediction, Some(PredictionKind::Score));
}

#[test]
fn file_then_env_then_overrides() {
    let file = "[kafka]\ngroup_id = 'file'\nretrain_topic = 'file.retrain'\n\
                [monitor]\nwindow_size = 300\nmin_window = 10";
    let env = env(&[
        ("DRIFTWARDEN_KAFKA__GROUP_ID", "env"),
        ("DRIFTWARDEN_MONITOR__WINDOW_SIZE", "500"),
        ("DRIFTWARDEN_CONFIG", "ignored: no nesting"),
        ("OTHER__VAR", "ignored: no prefix"),
    ]);
    let flags = overrides(&[("kafka.group_id", "flag")]);

    let config = load_str(file, env, &flags).unwrap();

    assert_eq!(config.kafka.group_id, "flag");
    assert_eq!(
        config.monitor.window,
        Window::Count(500.try_into().unwrap())
    );
    assert_eq!(config.monitor.min_window.get(), 10);
    assert_eq!(config.kafka.retrain_topic.as_str(), "file.retrain");
}

#[test]
fn env_values_are_typed_but_strings_stay_strings() {
    let env = env(&[
        ("DRIFTWARDEN_KAFKA__GROUP_ID", "123"),
        ("DRIFTWARDEN_KAFKA__PREDICTION_TOPICS", "[\"a\", \"b\"]"),
        ("DRIFTWARDEN_KAFKA__PROPERTIES__SECURITY_PROTOCOL", "SSL"),
        ("DRIFTWARDEN_ALERTS__SEND_RESOLVED", "false"),
        ("DRIFTWARDEN_MODELS__0__NAME", "churn"),
        ("DRIFTWARDEN_MODELS__0__BASELINE", "b.json"),
    ]);

    let config = load_str("", env, &[]).unwrap();

    assert_eq!(config.kafka.group_id, "123");
    assert_eq!(config.kafka.prediction_topics.len(), 2);
    let props: Vec<_> = config.kafka.properties.iter().collect();
    assert_eq!(props, [("security.protocol", "SSL")]);
    assert!(!config.alerts.send_resolved);
    assert_eq!(config.models[0].name.as_str(), "churn");
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let text = r#"
        [service]
        http_listen = "localhost:8080"
        [monitor]
        alpha = 1.5
        window_size = 1
        windw = 7
        [alerts]
        channels = ["slack", "pagerduty"]
        [alerts.retry]
        jitter = 2.0
        [channels.slack]
        webhook_url = "ftp://hooks.example.com/x"
        [channels.email]
        host = "smtp.example.com"
        [[models]]
        name = "churn"
        baseline = "a.json"
        [[models]]
        name = "churn"
    "#;

    let errors = errors_of(text);

    let keys: Vec<&str> = errors.errors().iter().map(|e| e.key.as_str()).collect();
    let expected = [
        "monitor.windw",
        "service.http_listen",
        "monitor.window_size",
        "monitor.alpha",
        "alerts.channels[1]",
        "alerts.retry.jitter",
        "channels.slack.webhook_url",
        "channels.email.from",
        "channels.email.to",
        "models[1].name",
        "models[1].baseline",
    ];
    for key in expected {
        assert!(keys.contains(&key), "{key} missing from:\n{errors}");
    }
    assert_eq!(
        keys.len(),
        expected.len(),
        "unexpected extra errors:\n{errors}"
    );
    assert_eq!(errors.to_string().lines().count(), expected.len());
}

#[test]
fn route_errors_list_the_configured_channels() {
    let text = "[alerts]\nchannels = ['pagerduty']\n\
                [channels.webhook]\nurl = 'https://a.example/x'\n\
                [channels.slack]\nwebhook_url = 'https://b.example/y'";

    let errors = errors_of(text);

    assert_eq!(
        errors.to_string(),
        "alerts.channels[0]: unknown channel \"pagerduty\" (configured: webhook, slack)"
    );
}

#[test]
fn a_route_to_an_unconfigured_channel_is_refused_once_any_is_configured() {
    let text = "[channels.slack]\nwebhook_url = 'https://b.example/y'";

    let errors = errors_of(text);

    assert!(errors.has_key("alerts.channels[0]"), "{errors}");
    assert!(errors.to_string().contains("\"webhook\" is not configured"));
}

#[test]
fn unknown_keys_are_named_and_traced_to_their_source() {
    let from_file = errors_of("[kafka]\ngroupid = 'x'");
    let from_env = load_str("", env(&[("DRIFTWARDEN_KAFKA__GROUPID", "x")]), &[]).unwrap_err();

    assert!(from_file.has_key("kafka.groupid"), "{from_file}");
    assert!(from_file.to_string().contains("unknown key `groupid`"));
    assert!(
        from_env.to_string().contains("DRIFTWARDEN_KAFKA__GROUPID"),
        "{from_env}"
    );
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let text = "[alerts]\nchannels = ['email', 'webhook']\n\
                [channels.email]\nhost = 'smtp.example.com'\nusername = 'dw'\n\
                from = 'dw@example.com'\nto = ['ops@example.com']\n\
                [channels.webhook]\nurl = 'https://hooks.example.com/T0K3N'\n\
                [kafka.properties]\n'sasl.password' = 'kafka-pw'";
    let env = env(&[
        ("DRIFTWARDEN_CHANNELS__EMAIL__PASSWORD", "hunter2"),
        ("DRIFTWARDEN_SERVICE__API_TOKEN", "api-t0ken"),
    ]);

    let config = load_str(text, env, &[]).unwrap();
    let shown = format!("{config:?}");

    for secret in ["hunter2", "T0K3N", "kafka-pw", "api-t0ken"] {
        assert!(!shown.contains(secret), "{secret} leaked");
    }
    let email = config.channels.email.as_ref().unwrap();
    assert_eq!(email.password.as_ref().unwrap().expose(), "hunter2");
}

#[test]
fn password_file_is_read_or_reported() {
    let secret = temp_file("smtp-password", "s3cret\n");
    let email = |file: &Path| {
        format!(
            "[alerts]\nchannels = ['email']\n\
             [channels.email]\nhost = 'smtp.example.com'\nusername = 'dw'\nfrom = 'dw@example.com'\n\
             to = ['ops@example.com']\npassword_file = '{}'",
            file.display()
        )
    };

    let config = load_str(&email(&secret), env(&[]), &[]).unwrap();
    let missing = errors_of(&email(Path::new("/nonexistent/driftwarden/smtp")));
    std::fs::remove_file(&secret).unwrap();

    let password = config.channels.email.unwrap().password.unwrap();
    assert_eq!(password.expose(), "s3cret");
    assert!(missing.has_key("channels.email.password_file"), "{missing}");
}

#[test]
fn model_overrides_resolve_against_the_global_settings() {
    let text = "[monitor]\nalpha = 0.05\ncorrection = 'bh'\n\
                [[models]]\nname = 'a'\nbaseline = 'a.json'\ndecision = 'fixed'\n\
                [[models]]\nname = 'b'\nbaseline = 'b.json'\ndecision = 'fixed'\ntarget_run_length = 500";

    let errors = errors_of(text);
    let fixed = load_str(&text[..text.rfind("[[models]]").unwrap()], env(&[]), &[]).unwrap();

    assert_eq!(errors.errors().len(), 1, "{errors}");
    assert!(errors.has_key("models[1].target_run_length"));
    let Decision::Fixed { alpha, correction } = fixed.models[0].monitor.decision else {
        panic!("model a should use the fixed decision");
    };
    assert_eq!((alpha.get(), correction), (0.05, Correction::Bh));
}

#[test]
fn file_problems_are_keyed_by_location() {
    let syntax = errors_of("[kafka]\ngroup_id = \n");
    let missing = load(
        Some(Path::new("/nonexistent/driftwarden.toml")),
        env(&[]),
        &[],
    )
    .unwrap_err();

    assert!(
        syntax.errors()[0].key.starts_with("(config text):2:"),
        "{syntax}"
    );
    assert!(
        missing.has_key("/nonexistent/driftwarden.toml"),
        "{missing}"
    );
}

#[test]
fn report_lists_problems_or_summarizes() {
    let ok = load_str(
        "[[models]]\nname = 'churn'\nbaseline = 'c.json'",
        env(&[]),
        &[],
    );
    let bad = load_str("[monitor]\nalpha = 2.0", env(&[]), &[]);

    let (ok_text, ok_flag) = render_report("test.toml", &ok);
    let (bad_text, bad_flag) = render_report("test.toml", &bad);

    assert!(ok_flag && ok_text.starts_with("OK: test.toml"), "{ok_text}");
    assert!(ok_text.contains("churn: baseline c.json"), "{ok_text}");
    assert!(
        !bad_flag && bad_text.contains("monitor.alpha"),
        "{bad_text}"
    );
}

/// Every key the parser accepts is documented in the shipped file, as a
/// setting or a commented-out example.
#[test]
fn shipped_file_documents_every_key() {
    let text = std::fs::read_to_string(shipped_path()).unwrap();
    let documented = |key: &str| {
        text.lines().any(|line| {
            let line = line.trim_start_matches(['#', ' ']);
            line.starts_with(&format!("{key} ="))
                || line.ends_with(&format!(".{key}]"))
                || line == format!("[{key}]")
                || line == format!("[[{key}]]")
        })
    };
    let sections = [
        "",
        "[service]",
        "[kafka]",
        "[monitor]",
        "[alerts]",
        "[alerts.retry]",
        "[channels]",
        "[channels.webhook]",
        "[channels.slack]",
        "[channels.email]",
        "[retrain]",
        "[checkpoint]",
        "[baselines]",
        "[telemetry]",
        "[[models]]",
    ];

    for section in sections {
        let errors = errors_of(&format!("{section}\nzz_undocumented = 1"));
        let message = &errors.errors()[0].message;
        let (_, expected) = message.split_once("expected ").unwrap();
        // serde lists the accepted keys in backticks: `a`, `b` or `c`.
        for key in expected.split('`').skip(1).step_by(2) {
            assert!(documented(key), "{section} {key} is not documented");
        }
    }
}
