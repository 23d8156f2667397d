//! Lambda: the tenants API. API Gateway's JWT authorizer has verified the caller; the router
//! validates, writes SPEC rows and reads STATUS. No STS; its one CloudFormation call is
//! ValidateTemplate (publishing a version).

use api::lambda::with_authorizer_claims;
use api::{ApiState, router};
use controlplane::wiring::ApiConfig;
use lambda_http::Error;

pub async fn run() -> Result<(), Error> {
    let state = ApiState::from(ApiConfig::from_env().await?);
    lambda_http::run(with_authorizer_claims(router(state))).await
}
