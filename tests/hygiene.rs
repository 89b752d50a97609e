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

/// A module without the implicit prelude: the generated code names everything by path.
pub mod no_prelude {
    #![no_implicit_prelude]

    /// A schema whose module has no prelude at all.
    #[derive(::session_runtime::SessionData)]
    #[session(namespace = "np")]
    pub struct Bare {
        /// A counter.
        pub count: ::core::primitive::u64,
        /// A list.
        pub names: ::std::vec::Vec<::std::string::String>,
        /// An indexed field.
        #[session(index)]
        pub owner: ::core::option::Option<::core::primitive::u64>,
        /// An indexed string.
        #[session(index)]
        pub team: ::std::string::String,
    }
}

/// The primitive type names mean something else here.
pub mod primitives_shadowed {
    #![allow(non_camel_case_types, dead_code)]

    /// Shadows `u8`.
    pub struct u8;
    /// Shadows `u32`.
    pub struct u32;
    /// Shadows `usize`.
    pub struct usize;
    /// Shadows `bool`.
    pub struct bool;
    /// Shadows `str`.
    pub struct str;

    /// Upgrades nothing.
    ///
    /// # Errors
    /// Never.
    pub fn upgrade(
        _from: core::primitive::u32,
        _fields: &mut session_runtime::RawFields,
    ) -> Result<(), session_runtime::MigrationError> {
        Ok(())
    }

    /// A schema under shadowed primitive names.
    #[derive(session_runtime::SessionData)]
    #[session(version = 2, migrate = upgrade, namespace = "ps")]
    pub struct Primitive {
        /// A byte.
        pub byte: core::primitive::u8,
        /// A flag.
        pub flag: core::primitive::bool,
    }
}

/// The user's crate has a type named like the accessor type the derive once generated
/// (`<Struct>Fields`), used as a field of that very struct.
pub mod named_like_generated {
    /// The user's own type.
    #[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct SignupFields {
        /// An email address.
        pub email: String,
    }

    /// A schema whose field has that type.
    #[derive(session_runtime::SessionData)]
    #[session(namespace = "signup")]
    pub struct Signup {
        /// The form as filled in so far.
        pub fields: SignupFields,
    }
}

/// A field type that says `Self`.
pub mod self_typed {
    /// A list of crumbs, each possibly with a parent crumb of the same type.
    #[derive(session_runtime::SessionData)]
    #[session(namespace = "crumbs")]
    pub struct Crumb {
        /// The crumb's name.
        pub name: String,
        /// The parent, a whole `Crumb`: `Self` is the struct, not the generated accessors.
        pub parent: Option<Box<Self>>,
    }

    impl Default for Crumb {
        fn default() -> Self {
            Self {
                name: "root".to_owned(),
                parent: None,
            }
        }
    }

    impl serde::Serialize for Crumb {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            self.name.serialize(s)
        }
    }

    impl<'de> serde::Deserialize<'de> for Crumb {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Ok(Self {
                name: String::deserialize(d)?,
                parent: None,
            })
        }
    }
}

/// Field names that are not snake case, with the lint allowed on the struct only.
pub mod not_snake_case {
    /// A schema mirroring a JavaScript client's names.
    #[derive(session_runtime::SessionData)]
    #[allow(non_snake_case)]
    #[session(namespace = "js")]
    pub struct Client {
        /// The user's ID.
        pub userId: u64,
    }
}

/// A glob import of the crate brings no trait whose methods shadow an accessor: fields named
/// like the runtime's internal methods keep their accessors.
pub mod glob_imported {
    #[allow(clippy::wildcard_imports)]
    use session_runtime::*;

    /// Fields named like methods of the runtime's internal traits.
    #[derive(SessionData)]
    #[session(namespace = "glob")]
    pub struct Named {
        /// Named like `SchemaFields::into_data`.
        pub into_data: u32,
        /// Named like `SchemaFields::decode_all`.
        pub decode_all: u32,
        /// Named like `SchemaFields::state`.
        pub state: u32,
    }

    /// Sets every field through `TypedSession` and reads them back.
    pub async fn handler(mut named: TypedSession<Named>) -> String {
        named.set_into_data(1);
        named.set_decode_all(2);
        named.set_state(3);
        format!(
            "{} {} {}",
            named.into_data(),
            named.decode_all(),
            named.state()
        )
    }
}

#[tokio::test]
async fn derives_without_the_prelude_under_shadowed_primitives_and_clashing_user_names() {
    use axum::{routing::post, Router};
    use session_runtime::{Key, MemoryStore, SessionData, SessionLayer, TypedSession};
    use session_suite::http::{request, send, text};

    async fn all(
        mut bare: TypedSession<no_prelude::Bare>,
        mut primitive: TypedSession<primitives_shadowed::Primitive>,
        mut signup: TypedSession<named_like_generated::Signup>,
        mut crumb: TypedSession<self_typed::Crumb>,
        mut client: TypedSession<not_snake_case::Client>,
    ) -> String {
        bare.set_count(2);
        bare.names_mut().push("ada".to_owned());
        primitive.set_byte(7);
        primitive.set_flag(true);
        signup.fields_mut().email = "ada@example.com".to_owned();
        crumb.set_name("shop".to_owned());
        let parent = crumb.parent_mut().get_or_insert_with(Box::default);
        parent.name = "home".to_owned();
        client.set_userId(42);
        format!(
            "{} {:?} {} {} {} {} {} {}",
            bare.count(),
            bare.names(),
            primitive.byte(),
            primitive.flag(),
            signup.fields().email,
            crumb.name(),
            crumb.parent().as_ref().map_or("", |p| p.name.as_str()),
            client.userId(),
        )
    }

    let app = Router::new()
        .route("/all", post(all))
        .route("/glob", post(glob_imported::handler))
        .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
    let response = send(&app, request("POST", "/all", None, "")).await;
    assert_eq!(
        text(response).await,
        r#"2 ["ada"] 7 true ada@example.com shop home 42"#
    );
    let response = send(&app, request("POST", "/glob", None, "")).await;
    assert_eq!(text(response).await, "1 2 3");
    assert_eq!(
        self_typed::Crumb::SCHEMA.load_keys()[..2],
        ["crumbs.name", "crumbs.parent"]
    );
}

/// Fields named like the derive's own items of other derives and of earlier versions
/// (`__slot0`, `__member`, `__FIELD0`, `__core`): only `__sr_*` is kept for the derive, so
/// these compile and keep their own values.
pub mod internal_looking_names {
    #![allow(non_snake_case, clippy::pub_underscore_fields)] // the user's own struct

    /// A schema whose fields look like generated names.
    #[derive(session_runtime::SessionData)]
    pub struct Internal {
        /// Looks like a slot function.
        #[session(rename = "slot0")]
        pub __slot0: u8,
        /// Looks like a member function.
        #[session(rename = "member")]
        pub __member: u8,
        /// Looks like a field constant.
        #[session(rename = "field0")]
        pub __FIELD0: u8,
        /// Looks like the accessor type's shared state.
        #[session(rename = "core")]
        pub __core: u8,
    }
}

#[test]
fn fields_named_like_generated_items_keep_their_own_values() {
    use internal_looking_names::Internal;
    use session_runtime::{__private::SchemaFields, decode, DecodePolicy};

    let mut fields = decode::decode::<Internal>(
        &session_runtime::__private::RawRecord::default(),
        DecodePolicy::Lenient,
    )
    .unwrap()
    .fields;
    fields.set___slot0(1);
    fields.set___member(2);
    fields.set___FIELD0(3);
    fields.set___core(4);
    assert_eq!(
        (
            *fields.__slot0(),
            *fields.__member(),
            *fields.__FIELD0(),
            *fields.__core()
        ),
        (1, 2, 3, 4)
    );
    let whole = fields.into_data();
    assert_eq!(
        (whole.__slot0, whole.__member, whole.__FIELD0, whole.__core),
        (1, 2, 3, 4)
    );
}
