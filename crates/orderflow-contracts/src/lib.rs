//! The published event contract other teams subscribe to.
//!
//! The envelope and the v1 order events are defined once here and mirrored by
//! the JSON Schemas in `proto/`; producers serialise and consumers upcast
//! through this crate only, so a contract change is one reviewed diff.
