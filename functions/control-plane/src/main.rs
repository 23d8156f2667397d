//! Every Lambda function of the control plane, in one binary. SAM builds (and LTO-links the AWS
//! SDK into) one artifact for all of them; each function's `Handler` in template.yaml names the
//! one it runs, and Lambda passes that name to the runtime as `_HANDLER`.

mod api;
mod completion;
mod decommission;
mod metrics_job;
mod preview;
mod rollout_driver;
mod stream_failures;
mod stream_handler;
mod sweep;

use lambda_runtime::Error;

/// The environment variable Lambda sets to the function's configured handler.
const HANDLER_VAR: &str = "_HANDLER";

/// The handler names template.yaml may give a function, each the function it runs.
const HANDLERS: [&str; 9] = [
    "stream-handler",
    "completion",
    "sweep",
    "stream-failures",
    "decommission",
    "rollout-driver",
    "preview",
    "metrics-job",
    "api",
];

#[tokio::main]
async fn main() -> Result<(), Error> {
    let handler = std::env::var(HANDLER_VAR).unwrap_or_default();
    match handler.as_str() {
        "stream-handler" => stream_handler::run().await,
        "completion" => completion::run().await,
        "sweep" => sweep::run().await,
        "stream-failures" => stream_failures::run().await,
        "decommission" => decommission::run().await,
        "rollout-driver" => rollout_driver::run().await,
        "preview" => preview::run().await,
        "metrics-job" => metrics_job::run().await,
        "api" => api::run().await,
        _ => Err(unknown_handler(&handler).into()),
    }
}

/// Why the binary cannot start: the Handler it was given is none of its functions'.
fn unknown_handler(handler: &str) -> String {
    let given = if handler.is_empty() {
        format!("{HANDLER_VAR} is not set")
    } else {
        format!("{HANDLER_VAR} is {handler:?}")
    };
    format!(
        "{given}: set the function's Handler in template.yaml to one of {}",
        HANDLERS.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml_ng::Value;

    fn template_functions() -> Vec<(String, Value)> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        let template: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("template.yaml"))
                .expect("template.yaml parses");
        template["Resources"]
            .as_mapping()
            .expect("Resources")
            .iter()
            .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
            .map(|(id, r)| (id.as_str().expect("logical id").to_owned(), r.clone()))
            .collect()
    }

    #[test]
    fn every_function_in_the_template_names_a_handler_this_binary_runs() {
        let functions = template_functions();
        assert_eq!(functions.len(), HANDLERS.len(), "one function per handler");
        let mut named: Vec<&str> = functions
            .iter()
            .map(|(id, f)| {
                f["Properties"]["Handler"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{id}: no Handler"))
            })
            .collect();
        for (id, f) in &functions {
            let handler = f["Properties"]["Handler"].as_str().unwrap_or_default();
            assert!(
                HANDLERS.contains(&handler),
                "{id}: Handler {handler:?} is not one of {HANDLERS:?}"
            );
        }
        named.sort_unstable();
        named.dedup();
        assert_eq!(
            named.len(),
            HANDLERS.len(),
            "every handler is deployed once"
        );
    }

    /// SAM merges functions into one build only when their CodeUri and Metadata (build method,
    /// properties and all) are equal (samcli's FunctionBuildDefinition): one difference and it
    /// builds and links the binary again for that function.
    #[test]
    fn every_function_shares_one_build() {
        let functions = template_functions();
        let (first_id, first) = &functions[0];
        assert_eq!(
            first["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda")
        );
        assert_eq!(
            first["Metadata"]["BuildProperties"]["Binary"].as_str(),
            Some(env!("CARGO_PKG_NAME")),
            "{first_id}: the binary SAM builds is this one"
        );
        for (id, f) in &functions[1..] {
            assert_eq!(
                f["Metadata"], first["Metadata"],
                "{id}'s Metadata against {first_id}'s"
            );
            assert_eq!(
                f["Properties"]["CodeUri"], first["Properties"]["CodeUri"],
                "{id}'s CodeUri against {first_id}'s"
            );
            for shared in ["Runtime", "Architectures"] {
                assert!(
                    f["Properties"].get(shared).is_none(),
                    "{id}: {shared} only in Globals"
                );
            }
        }
    }

    #[test]
    fn an_unknown_or_missing_handler_is_named_with_the_known_ones() {
        let missing = unknown_handler("");
        assert!(missing.starts_with("_HANDLER is not set"), "{missing}");
        let unknown = unknown_handler("bootstrap");
        assert!(unknown.contains("\"bootstrap\""), "{unknown}");
        for handler in HANDLERS {
            assert!(unknown.contains(handler), "{unknown}");
        }
    }
}
