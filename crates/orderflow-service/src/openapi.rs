//! Pieces of OpenAPI documents both HTTP APIs share: the patterns that say
//! exactly what the domain's text rules accept, and a way to put a pattern
//! on a header or query parameter that the annotations cannot express. They
//! live in the shell so that neither API depends on the other for them.
//! The patterns use only syntax that ECMA-262 and Python's `re` (what
//! schemathesis generates from) read alike.

use utoipa::openapi::schema::Schema;
use utoipa::openapi::{OpenApi as Document, RefOr};

/// Whitespace that Rust's `str::trim` removes (Unicode `White_Space`), as
/// the inside of a character class.
pub const WHITESPACE: &str = r"\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Non-control whitespace (control characters are excluded separately).
pub const SPACE_SEPARATORS: &str = r"\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Control characters (Unicode `Cc`, Rust's `char::is_control`).
pub const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";

/// What `orderflow_domain::Text::parse(raw, max)` accepts: after trimming
/// whitespace, 1 to `max` characters, none of them a control character.
/// With `blank_ok`, also nothing but whitespace (an optional field left
/// blank).
pub fn text_pattern(max: usize, blank_ok: bool) -> String {
    let edge = format!(r"[^\x00-\x20\x7f-\x9f{SPACE_SEPARATORS}]");
    let inner = format!("[^{CONTROL}]");
    let mut core = format!("{edge}({inner}{{0,{}}}{edge})?", max.saturating_sub(2));
    if blank_ok {
        core = format!("({core})?");
    }
    format!("^[{WHITESPACE}]*{core}[{WHITESPACE}]*$")
}

/// Sets `pattern` on every parameter (header or query) called `name`.
pub fn set_parameter_pattern(doc: &mut Document, name: &str, pattern: &str) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for parameter in operation.parameters.iter_mut().flatten() {
                if parameter.name == name
                    && let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_mut()
                {
                    object.pattern = Some(pattern.to_owned());
                }
            }
        }
    }
}
