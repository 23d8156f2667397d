//! The built `tenantctl` binary on its own, with no system to talk to: what it says when it is
//! not set up, and what it writes.

use std::process::{Command, Output};

/// tenantctl with `args` and nothing from the environment but PATH and `env`.
fn tenantctl(args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = std::env::temp_dir().join(format!("tenantctl-cli-home-{}", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_tenantctl"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // No ~/.aws to find, and no instance metadata service to wait for.
        .env("HOME", &home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .output()
        .expect("tenantctl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn direct_without_aws_settings_names_what_to_set_and_exits_6() {
    let output = tenantctl(&["--direct", "tenants", "list"], &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{stderr}");
    for named in [
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
        ".local/operator.env",
    ] {
        assert!(stderr.contains(named), "{named} in\n{stderr}");
    }
    assert!(!stderr.contains("DispatchFailure"), "{stderr}");

    // A region and keys, but no endpoint: only that is left to say.
    let output = tenantctl(
        &["--direct", "tenants", "list"],
        &[
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("with --direct, check AWS_ENDPOINT_URL"),
        "{stderr}"
    );
}

#[test]
fn completions_are_written_into_a_folder_made_for_them() {
    let dir = std::env::temp_dir().join(format!(
        "tenantctl-completions-{}/not/yet/there",
        std::process::id()
    ));
    let output = tenantctl(
        &["completions", "bash", "--output-dir", dir.to_str().unwrap()],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let written = dir.join("tenantctl.bash");
    assert_eq!(text(&output.stdout).trim(), written.display().to_string());
    let script = std::fs::read_to_string(&written).expect("the script");
    assert!(script.contains("_tenantctl"), "{script}");
    let _ = std::fs::remove_dir_all(dir.ancestors().nth(3).unwrap());
}
