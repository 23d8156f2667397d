//! Behind API Gateway (HTTP API): the JWT authorizer has verified the token; its claims are in
//! the request context, which lambda_http puts in the request's extensions.

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use lambda_http::request::RequestContext;

use crate::auth::Claims;

/// The router reading the authorizer's claims (requests without them get 401).
pub fn with_authorizer_claims(router: Router) -> Router {
    router
        .layer(middleware::from_fn(claims_from_context))
        .layer(middleware::from_fn(crate::with_request_id))
}

async fn claims_from_context(mut request: Request, next: Next) -> Response {
    let claims = match request.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|jwt| Claims(jwt.claims.clone())),
        _ => None,
    };
    if let Some(claims) = claims {
        request.extensions_mut().insert(claims);
    }
    next.run(request).await
}
