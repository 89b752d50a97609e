#!/usr/bin/env bash
# What `#[derive(SessionData)]` costs to compile, against serde's derives on the same
# 60-field struct: the rebuild time of a crate holding the struct after a touch (median of
# five), and the lines the derive expands to (rustc's `-Zunpretty=expanded`, enabled on
# stable with RUSTC_BOOTSTRAP=1, minus the struct alone).
#
#   bash benches/derive_cost.sh
#
# Variants: `plain` (the struct, no derive), `ours` (SessionData), `serde` (Serialize and
# Deserialize), `serde+json` (serde plus a serde_json round trip of the struct).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR="$repo/target/derive-cost"

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
make_crate serde "#[derive(serde::Serialize, serde::Deserialize, Default)]" ""
make_crate serde-json "#[derive(serde::Serialize, serde::Deserialize, Default)]" \
    "pub fn round_trip(big: &Big) -> Big { serde_json::from_str(&serde_json::to_string(big).unwrap()).unwrap() }"

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

rebuild_ms() { # dir
    (cd "$1" && cargo build -q 2>/dev/null)
    for _ in 1 2 3 4 5; do
        touch "$1/src/lib.rs"
        local start end
        start=$(date +%s%N)
        (cd "$1" && cargo build -q 2>/dev/null)
        end=$(date +%s%N)
        echo $(( (end - start) / 1000000 ))
    done | median
}

expanded_lines() { # dir
    (cd "$1" && RUSTC_BOOTSTRAP=1 cargo rustc -q --lib -- -Zunpretty=expanded 2>/dev/null) | wc -l
}

printf '%-12s %12s %16s\n' variant "rebuild ms" "expanded lines"
base_lines=$(expanded_lines "$work/plain")
for variant in plain ours serde serde-json; do
    ms=$(rebuild_ms "$work/$variant")
    lines=$(( $(expanded_lines "$work/$variant") - base_lines ))
    printf '%-12s %12s %16s\n' "$variant" "$ms" "$lines"
done
