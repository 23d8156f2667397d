//! The model is pure because it cannot be anything else: nothing in its dependency closure can
//! do I/O. A dependency on tokio, the AWS SDK or an HTTP stack (directly, or through
//! workspace-hack, which unifies every member's features) fails this test.

use std::process::Command;

const IO_CRATES: &[&str] = &[
    "tokio",
    "mio",
    "socket2",
    "hyper",
    "reqwest",
    "h2",
    "futures",
    "async-trait",
    "tracing",
];

#[test]
fn nothing_the_model_depends_on_can_do_io() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "model",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"serde_dynamo"), "read the tree: {tree}");
    let io: Vec<&&str> = crates
        .iter()
        .filter(|name| {
            IO_CRATES.contains(name)
                || name.starts_with("aws-")
                || name.starts_with("aws_")
                || **name == "workspace-hack"
        })
        .collect();
    assert!(io.is_empty(), "model depends on I/O crates: {io:?}");
}
