//! Shared by the integration tests: the sample events in events/.

use std::path::PathBuf;

use serde_json::Value;

/// A sample event from events/, as JSON.
pub fn event(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The SPEC image of the seed row, as the INSERT sample carries it.
#[allow(dead_code)] // not every test binary uses it
pub fn seed_image() -> serde_dynamo::Item {
    let insert = event("stream-insert.json");
    serde_json::from_value(insert["Records"][0]["dynamodb"]["NewImage"].clone()).expect("image")
}
