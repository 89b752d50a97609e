#!/usr/bin/env bash
# What `#[derive(SessionData)]` costs to compile, against serde's derives on the same
# 60-field struct: the rebuild time of a crate holding the struct after a touch, both
# incremental (what an edit-compile loop pays) and with `CARGO_INCREMENTAL=0` (the crate
# compiled from nothing, as in a clean or release build; dependencies stay built), each the
# median of nine interleaved rounds (`ROUNDS=n` for another count); and the lines the
# derive expands to (rustc's `-Zunpretty=expanded`, enabled on stable with
# RUSTC_BOOTSTRAP=1, minus the struct alone).
#
#   bash benches/derive_cost.sh
#
# Variants: `plain` (the struct, no derive), `ours` (SessionData), `ours-used` (SessionData
# and a decode and encode of every field, as a request would), `serde` (Serialize and
# Deserialize), `serde-json` (serde plus a serde_json round trip of the struct).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One target directory per mode: switching `CARGO_INCREMENTAL` in one would rebuild the
# workspace's crates each time.
incremental_target="$repo/target/derive-cost"
full_target="$repo/target/derive-cost-full"

fields() {
    local types=("u64" "String" "Vec<String>" "Option<u32>" "bool" "std::collections::BTreeMap<String, u32>")
    for i in $(seq 1 60); do
        echo "    pub f$i: ${types[$(( (i - 1) % 6 ))]},"
    done
}

make_crate() { # name, derive line, extra code
    local dir="$work/$1"
    mkdir -p "$dir/src"
    cat > "$dir/Cargo.toml" <<TOML
[package]
name = "derive-cost-$1"
version = "0.0.0"
edition = "2021"
publish = false

[lib]
path = "src/lib.rs"

[dependencies]
session-runtime = { path = "$repo/session-runtime" }
serde = { version = "1", features = ["derive"] }
serde_json = "1"

[workspace]
TOML
    {
        echo "#![allow(dead_code)]"
        echo "$2"
        echo "pub struct Big {"
        fields
        echo "}"
        echo "$3"
    } > "$dir/src/lib.rs"
}

make_crate plain "" ""
make_crate ours "#[derive(session_runtime::SessionData)]" ""
make_crate ours-used "#[derive(session_runtime::SessionData)]" \
    "pub fn round_trip(raw: &session_runtime::__private::RawRecord) -> usize {
    use session_runtime::{decode, DecodePolicy, __private::SchemaFields};
    let mut read = decode::decode::<Big>(raw, DecodePolicy::Strict).unwrap();
    let _ = read.fields.data();
    for i in 0..60 { read.fields.state_mut().mark_set(i); }
    let mut out = Vec::new();
    decode::collect_changes::<Big>(&mut read.fields, None, &mut out).unwrap();
    out.len()
}"
make_crate serde "#[derive(serde::Serialize, serde::Deserialize, Default)]" ""
make_crate serde-json "#[derive(serde::Serialize, serde::Deserialize, Default)]" \
    "pub fn round_trip(big: &Big) -> Big { serde_json::from_str(&serde_json::to_string(big).unwrap()).unwrap() }"

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

build() { # dir, mode
    if [ "$2" = full ]; then
        (cd "$1" && CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="$full_target" cargo build -q 2>/dev/null)
    else
        (cd "$1" && CARGO_TARGET_DIR="$incremental_target" cargo build -q 2>/dev/null)
    fi
}

build_ms() { # dir, mode: one rebuild after a touch
    touch "$1/src/lib.rs"
    local start end
    start=$(date +%s%N)
    build "$1" "$2"
    end=$(date +%s%N)
    echo $(( (end - start) / 1000000 ))
}

expanded_lines() { # dir
    (cd "$1" && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$incremental_target" cargo rustc -q --lib -- -Zunpretty=expanded 2>/dev/null) | wc -l
}

variants=(plain ours ours-used serde serde-json)
rounds=${ROUNDS:-9}
for variant in "${variants[@]}"; do
    build "$work/$variant" incremental
    build "$work/$variant" full
done
# Interleaved rounds, so that the machine's drift reaches every variant alike.
for round in $(seq 1 "$rounds"); do
    for variant in "${variants[@]}"; do
        for mode in incremental full; do
            echo "$variant $mode $(build_ms "$work/$variant" "$mode")"
        done
    done
done > "$work/times"

printf '%-12s %16s %16s %16s\n' variant "incremental ms" "full ms" "expanded lines"
base_lines=$(expanded_lines "$work/plain")
for variant in "${variants[@]}"; do
    incremental=$(awk -v v="$variant" '$1 == v && $2 == "incremental" { print $3 }' "$work/times" | median)
    full=$(awk -v v="$variant" '$1 == v && $2 == "full" { print $3 }' "$work/times" | median)
    lines=$(( $(expanded_lines "$work/$variant") - base_lines ))
    printf '%-12s %16s %16s %16s\n' "$variant" "$incremental" "$full" "$lines"
done
