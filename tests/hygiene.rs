//! The derive's output is hygienic: it compiles in a crate that shadows the prelude's names
//! and denies warnings, `unused_qualifications`, missing docs and clippy's pedantic lints.
#![deny(warnings, unused_qualifications, missing_docs)]
#![deny(clippy::pedantic)]

/// A module where every prelude name the derive might use means something else.
pub mod shadowed {
    #![allow(dead_code, clippy::struct_field_names)]

    /// Shadows `Result`.
    pub struct Result;
    /// Shadows `Option`.
    pub struct Option;
    /// Shadows `Some`.
    pub struct Some;
    /// Shadows `None`.
    pub struct None;
    /// Shadows `Ok`.
    pub struct Ok;
    /// Shadows `Err`.
    pub struct Err;
    /// Shadows `Box`.
    pub struct Box;
    /// Shadows `Vec`.
    pub struct Vec;
    /// Shadows `String`.
    pub struct String;
    /// Shadows `Default`.
    pub trait Default {}
    /// Shadows `Into`.
    pub trait Into {}

    /// A default for `label`.
    #[must_use]
    pub fn default_label() -> std::string::String {
        "x".to_owned()
    }

    /// Upgrades old records.
    ///
    /// # Errors
    /// Never.
    pub fn upgrade(
        from: u32,
        fields: &mut session_runtime::RawFields,
    ) -> core::result::Result<(), session_runtime::MigrationError> {
        if from < 2 {
            fields.rename("old", "label");
        }
        core::result::Result::Ok(())
    }

    /// A schema written under the shadowed names.
    #[derive(session_runtime::SessionData)]
    #[session(version = 2, migrate = upgrade, namespace = "h")]
    pub struct Hygienic {
        /// A counter.
        pub count: u64,
        /// A list.
        pub list: std::vec::Vec<std::string::String>,
        /// An optional value.
        pub maybe: core::option::Option<u8>,
        /// A label with a default.
        #[session(rename = "l", default = default_label)]
        pub label: std::string::String,
        /// Never stored.
        #[session(skip)]
        pub scratch: u8,
        /// A raw identifier.
        pub r#type: u8,
    }
}

#[test]
fn derives_and_works_under_shadowed_names() {
    use session_runtime::{__private::SchemaFields, decode, DecodePolicy, SessionData};
    use shadowed::Hygienic;

    let mut fields = decode::decode::<Hygienic>(
        &session_runtime::__private::RawRecord::default(),
        DecodePolicy::Lenient,
    )
    .unwrap()
    .fields;
    fields.set_count(3);
    fields.list_mut().push("a".to_owned());
    fields.set_type(4);
    assert_eq!(*fields.r#type(), 4);
    assert_eq!(fields.take_label(), "x");
    assert_eq!(Hygienic::SCHEMA.fields()[5].store_key(), "h.type");
    let state = fields.state();
    assert!(state.is_set(0) && state.is_set(1) && state.is_removed(3) && state.is_set(5));
    let whole = fields.into_data();
    assert_eq!((whole.count, whole.r#type, whole.list.len()), (3, 4, 1));
}
