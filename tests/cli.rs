//! The command line, run as a user would: the built binary.

use std::process::Command;

fn driftwarden() -> Command {
    Command::new(env!("CARGO_BIN_EXE_driftwarden"))
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("driftwarden-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Acceptance (g): every problem in a bad file is listed with its key and
/// the exit code is non-zero.
#[test]
fn check_config_lists_every_error_with_its_key() {
    let dir = scratch("bad");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        r#"
[service]
http_listen = "not an address"
[kafka]
bootstrap_servers = ""
groupid = "typo"
[monitor]
alpha = 1.5
window_size = 1
[alerts]
channels = ["pagerduty"]
[channels.email]
host = "smtp.example.com"
from = "not-an-address"
[[models]]
name = "churn"
"#,
    )
    .unwrap();
    let out = driftwarden()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    for key in [
        "service.http_listen",
        "kafka.bootstrap_servers",
        "kafka.groupid",
        "monitor.alpha",
        "monitor.window_size",
        "alerts.channels[0]",
        "channels.email.from",
        "models[0].baseline",
    ] {
        assert!(text.contains(key), "{key} missing from:\n{text}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The shipped configuration validates.
#[test]
fn shipped_configuration_is_valid() {
    let out = driftwarden()
        .args(["check-config", "--config"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/driftwarden.toml"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn every_subcommand_explains_itself() {
    for sub in ["run", "demo", "check-config"] {
        let out = driftwarden().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).len() > 200,
            "{sub} --help is too thin"
        );
    }
}
