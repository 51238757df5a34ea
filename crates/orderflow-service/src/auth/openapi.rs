//! What authentication adds to an API's OpenAPI document: the bearer
//! scheme, required by every operation, and the answers every operation can
//! give before its handler runs (401, 429, the request timeout's 503), plus
//! 403 on the operations a role may be refused.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Ref, RefOr, Response, ResponseBuilder};

/// Name of the security scheme in the documents.
pub const SCHEME: &str = "bearer";

fn problem(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/problem+json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ProblemDoc")))
            .build(),
    )
}

fn text_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .build()
}

fn integer_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        )
        .description(Some(description))
        .build()
}

/// Adds the bearer scheme and the authentication answers to `doc`;
/// `forbidden` names, per path and method (`"post"`), why a role can be
/// refused there (403).
pub fn document(doc: &mut Document, forbidden: &[(&str, &str, &str)]) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        SCHEME.to_owned(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "A JWT signed with a configured key (HS256 locally, RS256/ES256 from a JWKS \
                     file in production), with `iss`, `aud`, `exp` and `sub`, and `role` one of \
                     `customer` (subject = the customer id), `staff`, `service`.",
                ))
                .build(),
        ),
    );
    doc.security = Some(vec![SecurityRequirement::new(SCHEME, Vec::<String>::new())]);
    let unauthorized: Response = problem(
        "`unauthorized`: no bearer token, or one that does not verify (signature, algorithm, \
         issuer, audience, `exp`/`nbf`, subject, size); `WWW-Authenticate: Bearer`",
    )
    .header(
        "WWW-Authenticate",
        text_header("`Bearer realm=\"orderflow\"`"),
    )
    .build();
    let too_many: Response = problem(
        "`too-many-requests`: the token's subject is over its request rate (or its concurrent \
         waits or streams); `Retry-After`",
    )
    .header("Retry-After", integer_header("Seconds to wait"))
    .build();
    let timeout = "`timeout`: the request took longer than REQUEST_TIMEOUT (`Retry-After`)";
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation.as_mut() else {
                continue;
            };
            let responses = &mut operation.responses.responses;
            responses.insert("401".into(), RefOr::T(unauthorized.clone()));
            responses.insert("429".into(), RefOr::T(too_many.clone()));
            match responses.get_mut("503") {
                Some(RefOr::T(existing)) => {
                    existing.description = format!("{}; {timeout}", existing.description);
                }
                _ => {
                    let response = problem(timeout)
                        .header("Retry-After", integer_header("Seconds to wait"))
                        .build();
                    responses.insert("503".into(), RefOr::T(response));
                }
            }
            if let Some((_, _, why)) = forbidden.iter().find(|(p, m, _)| p == path && *m == method)
            {
                let response = problem(&format!("`forbidden`: {why}")).build();
                responses.insert("403".into(), RefOr::T(response));
            }
        }
    }
}
