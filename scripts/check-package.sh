#!/usr/bin/env bash
# Checks that the published crates package and build on their own, as
# `cargo publish` would upload them: `cargo package` with verification for
# singletable-derive, singletable and singletable-migrate (cargo orders them
# by dependency and resolves each one's unpublished workspace dependencies
# from a local overlay registry under target/package/tmp-registry), after
# checking that every package ships its license files and README and that
# migrate leaves out its DynamoDB Local tests.
#
#   scripts/check-package.sh                # all three crates
#   scripts/check-package.sh --no-verify    # extra args go to `cargo package`
#
# Needs no database. The verification builds share the workspace target dir,
# but each crate is built alone, with its own features: none of the
# workspace's dev-dependencies (tokio/test-util, proptest) or other members
# (lambda_runtime's tracing/log, serde/rc, pin-project ...), which the
# `cargo test --workspace` build unifies into every dependency. So the first
# run on a target dir compiles the AWS SDK stack twice more (singletable's
# set, singletable-migrate's set); cargo keeps those builds, and later runs
# compile only the three crates until Cargo.lock or a manifest changes.
#
# `--allow-dirty` is always passed: this checks what the working tree would
# package (a clean CI clone and a developer's edited tree alike); the
# uncommitted-changes guard belongs to `cargo publish`, which still has it.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
cd "$REPO_ROOT"

# In dependency order (cargo sorts them anyway).
crates=(singletable-derive singletable singletable-migrate)

# The workspace's dev profile (root Cargo.toml). A packaged manifest carries
# no profiles, so without these the verification would build every
# dependency (the AWS SDK above all) a second time with other settings.
# Keep in step with [profile.dev*] in Cargo.toml; a drift costs build time
# only, never correctness.
profile=(
    --config 'profile.dev.debug="line-tables-only"'
    --config 'profile.dev.package."*".opt-level=1'
    --config 'profile.dev.package."*".debug=false'
)

fail() {
    echo "check-package: $*" >&2
    exit 1
}

for crate in "${crates[@]}"; do
    files="$(cargo package --quiet --allow-dirty --list -p "$crate")" \
        || fail "cargo package --list -p $crate failed"
    for required in LICENSE-MIT LICENSE-APACHE README.md; do
        grep -qx "$required" <<<"$files" \
            || fail "$crate: $required is not in the package (each crate dir has LICENSE-* symlinks to the root files and a readme)"
    done
done

migrate_files="$(cargo package --quiet --allow-dirty --list -p singletable-migrate)"
if grep -q '^tests/' <<<"$migrate_files"; then
    fail "singletable-migrate ships tests/ (they need the unpublished singletable-tests harness; see exclude in migrate/Cargo.toml)"
fi

packages=()
for crate in "${crates[@]}"; do
    packages+=(-p "$crate")
done

# Cargo treats the overlay registry's crates like crates.io's: never
# changing for a given name and version. It reuses their unpacked sources
# under $CARGO_HOME/registry/src and their compiled artifacts in the target
# dir from an earlier run, so a crate changed since would be verified
# against its stale self (seen: "unresolved import `singletable::hash`",
# from a build made before that module existed). Both go first: the
# overlay's unpacked copies of our crates (crates.io's sources stay) and
# the build fingerprints of our crates (they rebuild; dependencies stay).
version="$(cargo pkgid -p singletable | sed 's/.*[#@]//')"
for dir in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/; do
    case "$(basename "$dir")" in
        index.crates.io-*) continue ;;
    esac
    for crate in "${crates[@]}"; do
        rm -rf "${dir}${crate}-${version}"
    done
done
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
for crate in "${crates[@]}"; do
    for fingerprint in "$target_dir"/debug/.fingerprint/"$crate"-????????????????; do
        # Keep the workspace's own builds of our crates (path sources, whose
        # dep-info names no registry file; cargo checks their mtimes):
        # dropping them made the next `cargo test --workspace` recompile every
        # member and test binary. Anything else goes, the overlay's builds
        # (sources under $CARGO_HOME/registry/src) above all.
        dep_info=("$target_dir"/debug/deps/*-"${fingerprint##*-}".d)
        if [[ -f ${dep_info[0]} ]] && ! grep -qF /registry/src/ "${dep_info[@]}"; then
            continue
        fi
        rm -rf "$fingerprint"
    done
done

cargo package --allow-dirty "${profile[@]}" "${packages[@]}" "$@"
echo "check-package: ${crates[*]} package and build on their own"
