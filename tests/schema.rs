//! The derive and the schema half of the runtime, as a user crate sees them: every attribute,
//! every accessor, per-field dirty tracking, encoding round trips and migrations.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};
// The decoding pipeline itself, which the layer drives: internals, reached as tests may.
use session_runtime::__private::{RawRecord, SchemaFields};
use session_runtime::{
    decode::{self, DecodeError, FieldWrite},
    Codec, DecodePolicy, JsonCodec, MigrationError, RawFields, SessionData,
};
use session_suite::codec::{marked, Marked};

mod renamed {
    pub use session_runtime as sessions;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    sku: String,
    qty: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
enum Plan {
    #[default]
    Free,
    Pro {
        seats: u16,
    },
}

fn default_theme() -> String {
    "light".to_owned()
}

fn migrate_shop(from: u32, fields: &mut RawFields) -> Result<(), MigrationError> {
    if from < 2 {
        // v1 called the theme `colour` and stored the user as a string.
        fields.rename("colour", "th");
        fields.convert("user_id", |id: String| id.parse::<u64>().ok())?;
        fields.remove("legacy");
        fields.insert("plan", &Plan::Pro { seats: 1 })?;
    }
    Ok(())
}

/// A schema using every container and field attribute.
#[derive(SessionData, Debug)]
#[session(version = 2, migrate = migrate_shop, namespace = "shop", crate = "renamed::sessions")]
struct Shop {
    user_id: Option<u64>,
    items: Vec<Item>,
    #[session(rename = "th", default = default_theme)]
    theme: String,
    plan: Plan,
    #[session(skip)]
    scratch: Vec<u8>,
}

/// The kinds of field users store.
#[derive(SessionData, Debug)]
struct Kinds {
    int: i64,
    uint: u128,
    float: f64,
    text: String,
    flag: bool,
    maybe: Option<String>,
    list: Vec<u32>,
    map: HashMap<String, u32>,
    ordered: BTreeMap<u32, Vec<String>>,
    nested: Vec<Item>,
    variant: Plan,
    tuple: (u8, String),
    duration: Duration,
    #[session(default = epoch)]
    instant: SystemTime,
    unit: (),
}

fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH
}

fn empty() -> HashMap<String, Vec<u8>> {
    HashMap::new()
}

fn raw(stored: &HashMap<String, Vec<u8>>) -> RawRecord {
    RawRecord::from(stored.clone())
}

fn load<T: SessionData>(stored: &HashMap<String, Vec<u8>>) -> decode::Decoded<T> {
    decode::decode::<T>(&raw(stored), DecodePolicy::Lenient).expect("lenient decoding never fails")
}

fn strict<T: SessionData>(
    stored: &HashMap<String, Vec<u8>>,
) -> Result<decode::Decoded<T>, DecodeError> {
    decode::decode::<T>(&raw(stored), DecodePolicy::Strict)
}

/// The fields whose stored value failed to decode (they took their default).
fn failed_fields(errors: &[DecodeError]) -> Vec<&'static str> {
    errors
        .iter()
        .map(|e| match e {
            DecodeError::Field { field, .. } => *field,
            other => panic!("unexpected issue {other}"),
        })
        .collect()
}

/// The writes a save would make for `fields`.
fn writes<T: SessionData>(fields: &mut T::Fields, stored_version: Option<u32>) -> Vec<FieldWrite> {
    let mut out = Vec::new();
    decode::collect_changes::<T>(fields, stored_version, &mut out).unwrap();
    out
}

fn as_map(writes: &[FieldWrite]) -> BTreeMap<String, Option<String>> {
    writes
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                v.as_ref().map(|b| String::from_utf8(b.to_vec()).unwrap()),
            )
        })
        .collect()
}

fn into_store(writes: Vec<FieldWrite>) -> HashMap<String, Vec<u8>> {
    writes
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.into_owned(), v.to_vec())))
        .collect()
}

fn encoded(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

#[test]
fn schema_describes_keys_version_and_namespace() {
    let schema = Shop::SCHEMA;
    assert_eq!(schema.name(), "Shop");
    assert_eq!(schema.version(), 2);
    assert_eq!(schema.namespace(), Some("shop"));
    assert_eq!(schema.version_key(), "__v.shop");
    let keys: Vec<_> = schema.fields().iter().map(|f| f.store_key()).collect();
    assert_eq!(
        keys,
        ["shop.user_id", "shop.items", "shop.th", "shop.plan", ""]
    );
    assert!(!schema.fields()[4].is_persisted());
    assert_eq!(Kinds::SCHEMA.version(), 1);
    assert_eq!(Kinds::SCHEMA.version_key(), "__v.Kinds");
    assert!(Shop::SCHEMA.owns_key("shop.old") && !Shop::SCHEMA.owns_key("other.x"));
    assert!(Kinds::SCHEMA.owns_key("int") && !Kinds::SCHEMA.owns_key("shop.items"));
}

#[test]
fn missing_fields_take_their_defaults() {
    let shop = load::<Shop>(&empty()).fields;
    assert_eq!(shop.user_id(), &None);
    assert!(shop.items().is_empty());
    assert_eq!(
        shop.theme(),
        "light",
        "`default = path` is used when absent"
    );
    assert_eq!(shop.plan(), &Plan::Free);
    assert!(shop.state().is_clean());
}

#[test]
fn reads_never_mark_fields() {
    let mut shop = load::<Shop>(&empty()).fields;
    let _ = (
        shop.user_id(),
        shop.items(),
        shop.theme(),
        shop.plan(),
        shop.scratch(),
    );
    let whole: &Shop = shop.data();
    assert_eq!(whole.theme, "light");
    assert!(shop.state().is_clean());
    assert!(writes::<Shop>(&mut shop, None).is_empty());
}

#[test]
fn each_writing_accessor_marks_only_its_field() {
    let mut shop = load::<Shop>(&empty()).fields;
    shop.set_user_id(Some(7));
    let state = shop.state().clone();
    assert!(state.is_set(0) && !state.is_changed(1) && !state.is_changed(2));

    shop.items_mut().push(Item {
        sku: "a".into(),
        qty: 1,
    });
    assert!(shop.state().is_set(1));

    let theme = shop.take_theme();
    assert_eq!(theme, "light");
    assert!(shop.state().is_removed(2));
    assert!(!shop.state().is_changed(3));

    assert_eq!(
        as_map(&writes::<Shop>(&mut shop, Some(2))),
        BTreeMap::from([
            ("shop.user_id".into(), Some("7".into())),
            ("shop.items".into(), Some(r#"[{"sku":"a","qty":1}]"#.into())),
            ("shop.th".into(), None),
        ])
    );
}

#[test]
fn take_returns_the_value_and_resets_to_the_default() {
    let stored = HashMap::from([
        ("shop.th".to_owned(), encoded(&"dark")),
        (
            "shop.items".to_owned(),
            encoded(&vec![Item {
                sku: "x".into(),
                qty: 2,
            }]),
        ),
        ("__v.shop".to_owned(), b"2".to_vec()),
    ]);
    let mut shop = load::<Shop>(&stored).fields;
    assert_eq!(shop.take_theme(), "dark");
    assert_eq!(shop.theme(), "light", "reset to the `default = path` value");
    let items = shop.take_items();
    assert_eq!(items.len(), 1);
    assert!(shop.items().is_empty());
    // Setting after taking writes the field again instead of removing it.
    shop.set_theme("blue".into());
    let w = as_map(&writes::<Shop>(&mut shop, Some(2)));
    assert_eq!(w.get("shop.th"), Some(&Some("\"blue\"".into())));
    assert_eq!(w.get("shop.items"), Some(&None));
}

#[test]
fn skip_fields_are_never_stored() {
    let mut shop = load::<Shop>(&empty()).fields;
    shop.set_scratch(vec![1, 2, 3]);
    shop.scratch_mut().push(4);
    assert_eq!(shop.scratch(), &[1, 2, 3, 4]);
    assert!(shop.state().is_clean());
    assert!(writes::<Shop>(&mut shop, None).is_empty());
    assert_eq!(shop.take_scratch(), [1, 2, 3, 4]);
    assert!(writes::<Shop>(&mut shop, None).is_empty());
}

#[test]
fn first_write_stores_the_schema_version_and_never_downgrades() {
    let mut shop = load::<Shop>(&empty()).fields;
    shop.set_plan(Plan::Pro { seats: 3 });
    let first = as_map(&writes::<Shop>(&mut shop, None));
    assert_eq!(first.get("__v.shop"), Some(&Some("2".into())));
    let again = as_map(&writes::<Shop>(&mut shop, Some(2)));
    assert!(!again.contains_key("__v.shop"));
    let newer = as_map(&writes::<Shop>(&mut shop, Some(9)));
    assert!(!newer.contains_key("__v.shop"), "a newer version is kept");
}

#[test]
fn every_kind_of_field_round_trips() {
    let mut kinds = load::<Kinds>(&empty()).fields;
    kinds.set_int(-42);
    kinds.set_uint(u128::MAX);
    kinds.set_float(1.5);
    kinds.set_text("héllo \"quoted\"".into());
    kinds.set_flag(true);
    kinds.set_maybe(Some("x".into()));
    kinds.set_list(vec![1, 2, 3]);
    kinds.set_map(HashMap::from([("a".into(), 1), ("b".into(), 2)]));
    kinds.set_ordered(BTreeMap::from([(3, vec!["c".into()])]));
    kinds.set_nested(vec![Item {
        sku: "n".into(),
        qty: 9,
    }]);
    kinds.set_variant(Plan::Pro { seats: 5 });
    kinds.set_tuple((7, "t".into()));
    kinds.set_duration(Duration::from_millis(1234));
    let now = SystemTime::now();
    kinds.set_instant(now);
    kinds.set_unit(());

    let stored = into_store(writes::<Kinds>(&mut kinds, None));
    assert_eq!(stored.len(), 16, "15 fields plus the version");
    let back = load::<Kinds>(&stored);
    assert!(back.issues.is_empty(), "{:?}", back.issues);
    let back = back.fields;
    assert_eq!(back.int(), &-42);
    assert_eq!(back.uint(), &u128::MAX);
    assert_eq!(back.float(), &1.5);
    assert_eq!(back.text(), "héllo \"quoted\"");
    assert!(*back.flag());
    assert_eq!(back.maybe().as_deref(), Some("x"));
    assert_eq!(back.list(), &[1, 2, 3]);
    assert_eq!(back.map(), kinds.map());
    assert_eq!(back.ordered(), kinds.ordered());
    assert_eq!(back.nested(), kinds.nested());
    assert_eq!(back.variant(), &Plan::Pro { seats: 5 });
    assert_eq!(back.tuple(), &(7, "t".to_owned()));
    assert_eq!(back.duration(), &Duration::from_millis(1234));
    assert_eq!(back.instant(), &now);
    assert!(back.state().is_clean());
}

#[test]
fn a_field_that_fails_to_decode_falls_back_and_the_others_survive() {
    let stored = HashMap::from([
        ("shop.user_id".to_owned(), b"\"not a number\"".to_vec()),
        ("shop.th".to_owned(), encoded(&"dark")),
        ("shop.items".to_owned(), b"{garbage".to_vec()),
        ("__v.shop".to_owned(), b"2".to_vec()),
    ]);
    let mut decoded = load::<Shop>(&stored);
    assert!(decoded.issues.is_empty(), "record-level issues only");
    // Accessed one by one (lazily), the broken fields take their defaults.
    assert_eq!(decoded.fields.user_id(), &None);
    assert!(decoded.fields.items().is_empty());
    assert_eq!(decoded.fields.theme(), "dark");
    // Decoding everything reports exactly the broken ones.
    let mut again = load::<Shop>(&stored);
    assert_eq!(
        failed_fields(&again.fields.decode_all()),
        ["user_id", "items"]
    );
    assert_eq!(again.fields.theme(), "dark");
    // The undecodable values are left alone in the store (a newer deploy may read them).
    assert!(decoded.fields.state().is_clean());
    assert!(writes::<Shop>(&mut decoded.fields, Some(2)).is_empty());
}

#[test]
fn strict_policy_rejects_an_undecodable_field() {
    let stored = HashMap::from([("shop.items".to_owned(), b"{garbage".to_vec())]);
    let err = strict::<Shop>(&stored).unwrap_err();
    assert!(
        matches!(err, DecodeError::Field { field: "items", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Shop.items"));
}

#[test]
fn migration_renames_converts_drops_and_adds() {
    let stored = HashMap::from([
        ("__v.shop".to_owned(), b"1".to_vec()),
        ("shop.colour".to_owned(), encoded(&"dark")),
        ("shop.user_id".to_owned(), encoded(&"42")),
        ("shop.legacy".to_owned(), encoded(&true)),
        (
            "shop.items".to_owned(),
            encoded(&vec![Item {
                sku: "k".into(),
                qty: 1,
            }]),
        ),
        // Another schema's key is not shown to the hook and not touched.
        ("other.colour".to_owned(), encoded(&"red")),
    ]);
    assert!(decode::needs_full_record::<Shop>(Some(1)));
    let decoded = load::<Shop>(&stored);
    assert!(decoded.issues.is_empty(), "{:?}", decoded.issues);
    assert_eq!(decoded.stored_version, Some(2));
    let mut decoded = decoded;
    let shop = &mut decoded.fields;
    assert_eq!(shop.theme(), "dark");
    assert_eq!(shop.user_id(), &Some(42));
    assert_eq!(shop.plan(), &Plan::Pro { seats: 1 });
    assert_eq!(shop.items().len(), 1);

    // Touched fields are marked; the untouched one is not.
    let state = shop.state();
    assert!(state.is_set(0) && state.is_set(2) && state.is_set(3));
    assert!(!state.is_changed(1));

    // The next save persists the new shape: new keys, removed old keys, the new version.
    let mut all = writes::<Shop>(shop, decoded.stored_version);
    all.extend(decoded.extra.iter().cloned());
    let all = as_map(&all);
    assert_eq!(all.get("shop.th"), Some(&Some("\"dark\"".into())));
    assert_eq!(all.get("shop.user_id"), Some(&Some("42".into())));
    assert_eq!(
        all.get("shop.plan"),
        Some(&Some(r#"{"Pro":{"seats":1}}"#.into()))
    );
    assert_eq!(all.get("shop.colour"), Some(&None));
    assert_eq!(all.get("shop.legacy"), Some(&None));
    assert_eq!(all.get("__v.shop"), Some(&Some("2".into())));
    assert!(!all.contains_key("shop.items"));
    assert!(!all.keys().any(|k| k.starts_with("other.")));
}

#[derive(SessionData, Debug)]
#[session(version = 3, migrate = failing_migration)]
struct Fragile {
    count: u32,
    name: String,
}

fn failing_migration(from: u32, fields: &mut RawFields) -> Result<(), MigrationError> {
    if from == 1 {
        return Err(MigrationError::other("v1 records cannot be migrated"));
    }
    // v2 -> v3: produce a value of the wrong type for `count`.
    fields.insert("count", &"many")?;
    Ok(())
}

#[test]
fn a_field_that_still_fails_after_migration_takes_its_default() {
    let stored = HashMap::from([
        ("__v.Fragile".to_owned(), b"2".to_vec()),
        ("count".to_owned(), encoded(&5)),
        ("name".to_owned(), encoded(&"kept")),
    ]);
    let mut decoded = load::<Fragile>(&stored);
    assert_eq!(failed_fields(&decoded.fields.decode_all()), ["count"]);
    assert_eq!(decoded.fields.count(), &0);
    assert_eq!(decoded.fields.name(), "kept");
    // The hook touched `count`, so it is rewritten (with its default).
    assert!(decoded.fields.state().is_set(0));

    let err = strict::<Fragile>(&stored).unwrap_err();
    assert!(matches!(err, DecodeError::Field { field: "count", .. }));
}

#[test]
fn a_failing_migration_reads_the_record_as_stored_or_rejects_it() {
    let stored = HashMap::from([
        ("__v.Fragile".to_owned(), b"1".to_vec()),
        ("count".to_owned(), encoded(&5)),
    ]);
    let decoded = load::<Fragile>(&stored);
    assert_eq!(decoded.fields.count(), &5);
    assert_eq!(decoded.stored_version, Some(1), "retried on the next load");
    assert!(decoded.extra.is_empty());
    assert!(matches!(
        decoded.issues.as_slice(),
        [DecodeError::Migration { from: 1, .. }]
    ));
    let err = strict::<Fragile>(&stored).unwrap_err();
    assert!(err.to_string().contains("from version 1"), "{err}");
}

#[test]
fn a_newer_record_is_read_but_never_downgraded() {
    let stored = HashMap::from([
        ("__v.shop".to_owned(), b"7".to_vec()),
        ("shop.th".to_owned(), encoded(&"dark")),
        ("shop.new_in_v7".to_owned(), encoded(&1)),
    ]);
    let decoded = load::<Shop>(&stored);
    assert_eq!(decoded.fields.theme(), "dark");
    assert_eq!(decoded.stored_version, Some(7));
    assert!(decoded.extra.is_empty(), "the migration hook did not run");
    assert!(matches!(
        decoded.issues.as_slice(),
        [DecodeError::NewerVersion {
            stored: 7,
            current: 2,
            ..
        }]
    ));
    let mut fields = decoded.fields;
    fields.set_user_id(Some(1));
    let w = as_map(&writes::<Shop>(&mut fields, decoded.stored_version));
    assert!(!w.contains_key("__v.shop"));

    let err = strict::<Shop>(&stored).unwrap_err();
    assert!(matches!(err, DecodeError::NewerVersion { stored: 7, .. }));
}

#[test]
fn an_invalid_stored_version_is_reported() {
    let stored = HashMap::from([("__v.shop".to_owned(), b"\"two\"".to_vec())]);
    assert!(matches!(
        strict::<Shop>(&stored),
        Err(DecodeError::Version { .. })
    ));
    let decoded = load::<Shop>(&stored);
    assert_eq!(decoded.issues.len(), 1);
}

#[test]
fn raw_fields_api() {
    let mut raw = RawFields::new();
    raw.insert("a", &1u32).unwrap();
    raw.insert_raw("b", b"not json".to_vec());
    assert_eq!(raw.get::<u32>("a").unwrap(), Some(1));
    assert!(raw.get::<u32>("b").is_err());
    assert!(raw.take::<u32>("b").is_err());
    assert!(raw.contains("b"), "a failed take leaves the field");
    assert!(raw.rename("a", "c"));
    assert!(!raw.rename("a", "d"));
    assert_eq!(raw.take::<u32>("c").unwrap(), Some(1));
    assert_eq!(raw.take::<u32>("c").unwrap(), None);
    assert!(raw.remove("b"));
    assert!(raw.is_empty());
    raw.insert("n", &"5").unwrap();
    assert!(raw.convert("n", |s: String| s.len()).unwrap());
    assert_eq!(raw.get::<usize>("n").unwrap(), Some(1));
    assert!(!raw.convert("missing", |s: String| s).unwrap());
    assert_eq!(raw.keys().collect::<Vec<_>>(), ["n"]);
    assert_eq!(raw.get_raw("n"), Some(&b"1"[..]));
}

#[test]
fn fields_marked_set_but_unchanged_are_still_written_once() {
    // `f_mut` marks even if the caller ends up not changing the value: the mark is about
    // intent, and one extra write is cheaper than comparing values.
    let mut shop = load::<Shop>(&empty()).fields;
    let _ = shop.items_mut();
    assert_eq!(
        writes::<Shop>(&mut shop, Some(2)),
        vec![(Cow::Borrowed("shop.items"), Some(b"[]".to_vec().into()))]
    );
}

#[test]
fn fields_are_decoded_only_when_touched() {
    let (_guard, logs) = session_suite::logs::capture();
    let stored = HashMap::from([
        ("shop.items".to_owned(), b"{garbage".to_vec()),
        ("shop.th".to_owned(), encoded(&"dark")),
    ]);
    let mut shop = load::<Shop>(&stored).fields;
    assert_eq!(shop.theme(), "dark");
    assert!(
        !logs.text().contains("failed to decode"),
        "an untouched field is not decoded: {}",
        logs.text()
    );
    assert!(shop.items().is_empty(), "touched: default");
    assert!(logs.text().contains("failed to decode") && logs.text().contains("items"));
    // Decoding is once per field: a second read logs nothing new.
    let before = logs.text().len();
    let _ = shop.items();
    assert_eq!(logs.text().len(), before);
    // Setting a field never decodes it.
    shop.set_plan(Plan::Pro { seats: 2 });
    assert_eq!(shop.plan(), &Plan::Pro { seats: 2 });
}

#[test]
fn the_whole_struct_reflects_accessor_writes_and_accessors_keep_working_after() {
    let stored = HashMap::from([
        ("shop.th".to_owned(), encoded(&"dark")),
        ("shop.user_id".to_owned(), encoded(&7u64)),
    ]);
    let mut shop = load::<Shop>(&stored).fields;
    shop.items_mut().push(Item {
        sku: "a".into(),
        qty: 1,
    });
    shop.set_scratch(vec![9]);
    let whole = shop.data();
    assert_eq!(whole.theme, "dark");
    assert_eq!(whole.user_id, Some(7));
    assert_eq!(whole.items.len(), 1);
    assert_eq!(whole.scratch, [9]);
    assert_eq!(whole.plan, Plan::Free);
    // After materializing, accessors read and write the same data, and still mark fields.
    assert_eq!(shop.theme(), "dark");
    shop.set_theme("blue".into());
    assert_eq!(shop.data().theme, "blue");
    assert_eq!(shop.take_user_id(), Some(7));
    assert_eq!(shop.data().user_id, None);
    let w = as_map(&writes::<Shop>(&mut shop, Some(2)));
    assert_eq!(w.get("shop.th"), Some(&Some("\"blue\"".into())));
    assert_eq!(w.get("shop.user_id"), Some(&None));
    assert!(w.contains_key("shop.items"));
    assert!(!w.contains_key("shop.plan"), "never touched");
    let owned = shop.into_data();
    assert_eq!(owned.theme, "blue");
}

#[derive(SessionData, Debug)]
struct Names {
    first: String,
    #[session(skip)]
    draft: String,
    second: String,
    count: u32,
    third: String,
}

/// Once `data()` built the whole struct, each accessor reaches its own field in it, also
/// among fields of one type (stored and skipped alike), and changes only that one.
#[test]
fn after_data_each_accessor_reaches_its_own_field_among_fields_of_one_type() {
    let stored = HashMap::from([
        ("first".to_owned(), encoded(&"a")),
        ("second".to_owned(), encoded(&"b")),
        ("count".to_owned(), encoded(&3u32)),
        ("third".to_owned(), encoded(&"c")),
    ]);
    let mut names = load::<Names>(&stored).fields;
    names.set_draft("d".into());
    let _ = names.data();
    assert_eq!(
        [names.first(), names.draft(), names.second(), names.third()],
        ["a", "d", "b", "c"]
    );
    assert_eq!(*names.count(), 3);
    names.second_mut().push('!');
    names.set_third("z".into());
    assert_eq!(names.take_first(), "a");
    *names.count_mut() += 1;
    assert_eq!(names.take_draft(), "d");
    let whole = names.data();
    assert_eq!(
        (
            &*whole.first,
            &*whole.draft,
            &*whole.second,
            whole.count,
            &*whole.third
        ),
        ("", "", "b!", 4, "z")
    );
    let w = as_map(&writes::<Names>(&mut names, Some(1)));
    assert_eq!(w.get("first"), Some(&None));
    assert_eq!(w.get("second"), Some(&Some("\"b!\"".into())));
    assert_eq!(w.get("third"), Some(&Some("\"z\"".into())));
    assert_eq!(w.get("count"), Some(&Some("4".into())));
    assert!(!w.contains_key("draft"), "a skipped field is never written");
}

fn migrate_badge(from: u32, fields: &mut RawFields<Marked>) -> Result<(), MigrationError> {
    if from < 2 {
        // v1 stored the level as text.
        fields.convert("level", |level: String| level.parse::<u8>().unwrap_or(0))?;
        fields.insert("since", &2024u16)?;
    }
    Ok(())
}

/// A schema with a codec of its own (`Marked`: JSON behind a byte that is not text).
#[derive(SessionData, Debug)]
#[session(codec = Marked, version = 2, migrate = migrate_badge, namespace = "badge")]
struct Badge {
    level: u8,
    since: u16,
    label: String,
}

#[test]
fn a_schema_with_its_own_codec_reads_and_writes_with_it() {
    let stored = HashMap::from([
        ("badge.level".to_owned(), marked(&7u8)),
        ("badge.label".to_owned(), marked(&"gold")),
        ("__v.badge".to_owned(), b"2".to_vec()),
    ]);
    let mut decoded = load::<Badge>(&stored);
    assert_eq!(*decoded.fields.level(), 7);
    assert_eq!(decoded.fields.label(), "gold");
    decoded.fields.set_label("silver".into());
    let written = writes::<Badge>(&mut decoded.fields, decoded.stored_version);
    let [(key, Some(value))] = &written[..] else {
        panic!("{written:?}")
    };
    assert_eq!(key, "badge.label");
    assert_eq!(&value[..], marked(&"silver"));

    // The first write of a new session: fields in the codec, the version as decimal text.
    let mut fresh = load::<Badge>(&empty());
    fresh.fields.set_level(1);
    let written = into_store(writes::<Badge>(&mut fresh.fields, None));
    assert_eq!(written["badge.level"], marked(&1u8));
    assert_eq!(written["__v.badge"], b"2");

    // A value the codec does not read (plain JSON here) falls back, as any bad value does.
    let stored = HashMap::from([
        ("badge.level".to_owned(), encoded(&7u8)),
        ("badge.label".to_owned(), marked(&"gold")),
        ("__v.badge".to_owned(), b"2".to_vec()),
    ]);
    let mut decoded = load::<Badge>(&stored);
    assert_eq!(failed_fields(&decoded.fields.decode_all()), ["level"]);
    assert_eq!(*decoded.fields.level(), 0);
    assert_eq!(decoded.fields.label(), "gold");
    assert!(strict::<Badge>(&stored).is_err());
}

#[test]
fn a_migration_reads_and_writes_raw_fields_with_the_schemas_codec() {
    let stored = HashMap::from([
        ("badge.level".to_owned(), marked(&"5")),
        ("badge.label".to_owned(), marked(&"bronze")),
        ("__v.badge".to_owned(), b"1".to_vec()),
    ]);
    let mut decoded = load::<Badge>(&stored);
    assert!(decoded.issues.is_empty(), "{:?}", decoded.issues);
    assert_eq!(*decoded.fields.level(), 5);
    assert_eq!(*decoded.fields.since(), 2024);
    assert_eq!(decoded.fields.label(), "bronze");
    let mut all = writes::<Badge>(&mut decoded.fields, decoded.stored_version);
    all.extend(decoded.extra.iter().cloned());
    let all = into_store(all);
    assert_eq!(all["badge.level"], marked(&5u8));
    assert_eq!(all["badge.since"], marked(&2024u16));
    assert_eq!(all["__v.badge"], b"2");
    assert!(!all.contains_key("badge.label"), "untouched");

    let mut raw = RawFields::<Marked>::default();
    raw.insert("a", &1u32).unwrap();
    assert_eq!(raw.get_raw("a"), Some(&marked(&1u32)[..]));
    assert_eq!(raw.get::<u32>("a").unwrap(), Some(1));
    raw.insert_raw("json", b"1".to_vec());
    assert!(raw.get::<u32>("json").is_err());
}

/// Version 1 of `Switched` was stored as JSON; version 2 moved to `Marked`.
fn switch_codec(from: u32, fields: &mut RawFields<Marked>) -> Result<(), MigrationError> {
    if from < 2 {
        let keys: Vec<String> = fields.keys().map(str::to_owned).collect();
        for key in keys {
            let old = fields.get_raw(&key).expect("listed");
            let value: serde_json::Value = JsonCodec::decode(old).map_err(MigrationError::other)?;
            fields.insert(key, &value)?;
        }
    }
    Ok(())
}

#[derive(SessionData, Debug)]
#[session(codec = Marked, version = 2, migrate = switch_codec)]
struct Switched {
    name: String,
    tags: Vec<String>,
}

/// The README's recipe for changing a schema's codec: a version bump and a hook that reads
/// the old bytes.
#[test]
fn a_version_bump_with_a_hook_moves_stored_fields_to_a_new_codec() {
    let stored = HashMap::from([
        ("name".to_owned(), encoded(&"ann")),
        ("tags".to_owned(), encoded(&["a", "b"])),
        ("__v.Switched".to_owned(), b"1".to_vec()),
    ]);
    let mut decoded = load::<Switched>(&stored);
    assert!(decoded.issues.is_empty(), "{:?}", decoded.issues);
    assert_eq!(decoded.fields.name(), "ann");
    assert_eq!(decoded.fields.tags(), &["a", "b"]);
    let mut all = writes::<Switched>(&mut decoded.fields, decoded.stored_version);
    all.extend(decoded.extra.iter().cloned());
    let all = into_store(all);
    assert_eq!(all["name"], marked(&"ann"));
    assert_eq!(all["tags"], marked(&["a", "b"]));
    assert_eq!(all["__v.Switched"], b"2");
}

/// The derive spells the entry separator and the bounds of map fields on its own: its output
/// must be what the runtime reads.
#[test]
fn the_derive_and_the_runtime_agree_on_map_fields() {
    use session_runtime::__private::{
        DEFAULT_MAX_ENTRIES, DEFAULT_MAX_KEY_LEN, ENTRY_SEPARATOR, MAX_KEY_LEN_LIMIT,
    };

    #[derive(SessionData)]
    #[session(namespace = "tiedmap")]
    struct TiedMap {
        #[session(entries)]
        items: std::collections::BTreeMap<String, u32>,
        #[session(entries(max = 5, max_key_len = 256))]
        few: std::collections::HashMap<u8, u32>,
    }

    let [items, few] = TiedMap::SCHEMA.fields() else {
        panic!("two fields");
    };
    assert_eq!(
        items.entry_prefix(),
        Some(format!("tiedmap.items{ENTRY_SEPARATOR}").as_str())
    );
    assert_eq!(
        (items.max_entries(), items.max_key_len()),
        (DEFAULT_MAX_ENTRIES, DEFAULT_MAX_KEY_LEN)
    );
    assert_eq!(
        (few.max_entries(), few.max_key_len()),
        (5, MAX_KEY_LEN_LIMIT)
    );
    assert!(TiedMap::SCHEMA.load_keys().contains(&"tiedmap.items#"));
    assert!(!TiedMap::SCHEMA.load_keys().contains(&"tiedmap.items"));
    assert!(session_runtime::store::is_entry_prefix(
        items.entry_prefix().unwrap()
    ));
}

/// The derive spells the reserved prefix, the namespace separator and the version key on its
/// own (a proc-macro crate cannot share constants): this ties its output to the runtime's
/// definitions. `tests/ui/reserved_key.rs` and `key_with_separator.rs` show it refuses both.
#[test]
fn the_derive_and_the_runtime_agree_on_reserved_keys() {
    use session_runtime::__private::{
        CREATED_KEY, DATA_KEY_KEY, IDLE_TIMEOUT_KEY, NAMESPACE_SEPARATOR, RESERVED_KEY_PREFIX,
        VERSION_KEY_PREFIX,
    };

    #[derive(SessionData)]
    #[session(namespace = "tied")]
    struct Tied {
        value: u32,
    }
    #[derive(SessionData)]
    struct Plain {
        value: u32,
    }

    assert_eq!(
        Tied::SCHEMA.version_key(),
        format!("{VERSION_KEY_PREFIX}tied")
    );
    assert_eq!(
        Plain::SCHEMA.version_key(),
        format!("{VERSION_KEY_PREFIX}Plain")
    );
    assert_eq!(
        Tied::SCHEMA.fields()[0].store_key(),
        format!("tied{NAMESPACE_SEPARATOR}value")
    );
    for key in Tied::SCHEMA.load_keys() {
        let field_key = !key.starts_with(RESERVED_KEY_PREFIX);
        assert!(
            field_key
                || [CREATED_KEY, IDLE_TIMEOUT_KEY, DATA_KEY_KEY].contains(key)
                || key.starts_with(VERSION_KEY_PREFIX),
            "{key}"
        );
    }
    assert!(Tied::SCHEMA.load_keys().contains(&CREATED_KEY));
    assert!(Tied::SCHEMA.load_keys().contains(&IDLE_TIMEOUT_KEY));
    assert!(Tied::SCHEMA.load_keys().contains(&DATA_KEY_KEY));
}

/// Accessors have their field's visibility: a `pub(crate)` or `pub(super)` field's accessors
/// reach exactly as far as the field (`tests/ui/private_field_accessor.rs` shows a private
/// one's do not leave its module).
mod visibility {
    pub mod outer {
        pub mod inner {
            use session_runtime::SessionData;

            #[derive(SessionData)]
            #[session(namespace = "vis")]
            pub struct Account {
                pub name: String,
                pub(crate) plan: String,
                pub(super) seen: u32,
                secret: u32,
            }

            /// The private field, from its own module.
            pub fn bump_secret(fields: &mut <Account as SessionData>::Fields) -> u32 {
                fields.set_secret(fields.secret() + 1);
                *fields.secret()
            }
        }

        /// `pub(super)` reaches here.
        pub fn see(fields: &mut <inner::Account as session_runtime::SessionData>::Fields) {
            *fields.seen_mut() += 1;
        }
    }

    #[test]
    fn accessors_reach_as_far_as_their_field() {
        use session_runtime::{__private::RawRecord, decode, DecodePolicy};

        let mut fields =
            decode::decode::<outer::inner::Account>(&RawRecord::default(), DecodePolicy::Lenient)
                .unwrap()
                .fields;
        fields.set_name("ada".into());
        fields.set_plan("pro".into());
        outer::see(&mut fields);
        assert_eq!(outer::inner::bump_secret(&mut fields), 1);
        assert_eq!(
            (fields.name().as_str(), fields.plan().as_str()),
            ("ada", "pro")
        );
    }
}

/// serde's `rename`, `skip` and `default` on a field mean what `#[session(..)]`'s do, and
/// `#[session(default)]` without a value is the type's `Default`, as in serde.
#[test]
fn serde_field_attributes_with_a_session_meaning_are_honoured() {
    use serde::{Deserialize, Serialize};

    fn dark() -> String {
        "dark".into()
    }

    #[derive(SessionData, Serialize, Deserialize)]
    #[session(namespace = "sd")]
    struct Prefs {
        #[serde(rename = "th", default = "dark")]
        theme: String,
        #[serde(skip)]
        scratch: u32,
        #[session(default)]
        visits: u32,
        #[serde(default)]
        tags: Vec<String>,
    }

    let keys: Vec<&str> = Prefs::SCHEMA
        .fields()
        .iter()
        .map(|f| f.store_key())
        .collect();
    assert_eq!(keys, ["sd.th", "", "sd.visits", "sd.tags"]);
    assert!(!Prefs::SCHEMA.fields()[1].is_persisted());
    let fields = decode::decode::<Prefs>(&RawRecord::default(), DecodePolicy::Lenient)
        .unwrap()
        .fields;
    assert_eq!(fields.theme(), "dark");
    assert_eq!((*fields.scratch(), *fields.visits()), (0, 0));
    assert!(fields.tags().is_empty());
}
