//! The method registry.

use baselines::registry::{builtin_entries, MethodEntry};
use baselines::{build_method, method_names, EditError, EditMethod, EditRequest};
use image::RgbImage;

#[test]
fn names_and_entries_agree() {
    assert_eq!(method_names(), &["ct", "nst", "clipstyler", "ip2p", "lms"]);
    let entry_names: Vec<&str> = builtin_entries().iter().map(|e| e.name).collect();
    assert_eq!(entry_names, method_names());
    // Methods that need downloaded weights are built in their own tests (tiny fixtures).
    for name in method_names()
        .iter()
        .filter(|n| !matches!(**n, "ip2p" | "nst" | "clipstyler" | "lms"))
    {
        let m = build_method(name, &serde_json::Value::Null).expect("builds with defaults");
        assert_eq!(m.name(), *name);
    }
}

#[test]
fn names_match_case_insensitively() {
    assert_eq!(
        build_method("CT", &serde_json::Value::Null)
            .expect("builds")
            .name(),
        "ct"
    );
}

#[test]
fn unknown_name_lists_the_known_ones() {
    let err = build_method("nst-typo", &serde_json::Value::Null).expect_err("unknown");
    assert!(matches!(err, EditError::UnknownMethod { .. }));
    assert_eq!(
        err.to_string(),
        "unknown edit method 'nst-typo'; known methods: ct, nst, clipstyler, ip2p, lms"
    );
}

#[test]
fn missing_diffusion_weights_are_named() {
    let err = build_method(
        "ip2p",
        &serde_json::json!({"weights": "/nonexistent/instruct-pix2pix"}),
    )
    .expect_err("no weights");
    let msg = chain(&err);
    assert!(matches!(err, EditError::MissingResource { .. }), "{msg}");
    assert!(msg.contains("/nonexistent/instruct-pix2pix"), "{msg}");
}

struct Identity;

impl EditMethod for Identity {
    fn name(&self) -> &str {
        "identity"
    }
    fn parameters(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    fn edit(&self, req: &EditRequest<'_>) -> Result<RgbImage, EditError> {
        Ok(req.source.clone())
    }
}

fn build_identity(_: &serde_json::Value) -> Result<Box<dyn EditMethod>, EditError> {
    Ok(Box::new(Identity))
}

#[test]
fn callers_can_register_more_methods() {
    let mut reg = baselines::registry::builtin();
    let entry = MethodEntry {
        name: "identity",
        build: build_identity,
    };
    reg.register(entry).expect("new name");
    assert_eq!(
        reg.names(),
        vec!["ct", "nst", "clipstyler", "ip2p", "lms", "identity"]
    );
    assert!(reg.register(entry).is_err(), "duplicate names are refused");
    let m = reg
        .build("identity", &serde_json::Value::Null)
        .expect("builds");
    let src = RgbImage::new(3, 2);
    assert_eq!(
        m.edit(&EditRequest::new(&src, "joy", 0)).expect("edits"),
        src
    );
    let err = reg
        .build("nope", &serde_json::Value::Null)
        .expect_err("unknown");
    assert!(err
        .to_string()
        .ends_with("known methods: ct, nst, clipstyler, ip2p, lms, identity"));
    // The method is usable as a trait object shared across threads.
    fn assert_send_sync<T: Send + Sync + ?Sized>() {}
    assert_send_sync::<dyn EditMethod>();
}

/// The error and its causes on one line, as `emobench` prints them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}
