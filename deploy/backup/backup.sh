#!/usr/bin/env bash
# Backs up ClickHouse MergeTree tables with ALTER TABLE … FREEZE: a consistent snapshot of every part (hard
# links, instant, no locks on inserts), copied to a directory and optionally uploaded to S3.
#
#   deploy/backup/backup.sh [--name NAME] [--s3 s3://bucket/prefix] DEST_DIR TABLE...
#
#   TABLE     db.table, or db for every MergeTree-family table of that database
#   DEST_DIR  backups go to DEST_DIR/NAME/<db>/<table>/ (schema.sql, rows, parts/<part>/…), plus manifest.tsv
#   --name    backup name (default: UTC time, 20261122T041500Z)
#   --s3      afterwards `aws s3 cp --recursive --sse AES256` DEST_DIR/NAME to <url>/NAME (or AURORA_BACKUP_S3)
#
# Runs where the server's data directory is readable (the ClickHouse host, or inside its container): FREEZE
# writes the snapshot under <path>/shadow/ and this script copies it out, then removes it.
# Connection from CLICKHOUSE_HOST/PORT/USER/PASSWORD (see common.sh). Works from 18.16 to current releases.
set -euo pipefail
source "$(dirname "$0")/common.sh"

name="$(date -u +%Y%m%dT%H%M%SZ)"
s3="${AURORA_BACKUP_S3:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --name) name="$2"; shift 2 ;;
        --s3) s3="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        --*) die "unknown option $1" ;;
        *) break ;;
    esac
done
[ $# -ge 2 ] || die "usage: backup.sh [--name NAME] [--s3 URL] DEST_DIR TABLE..."
dest="$1"; shift
case "$name" in */*|.*|"") die "--name must be a plain directory name" ;; esac
out="$dest/$name"
[ ! -e "$out" ] || die "$out exists already"

# Expand databases into their MergeTree tables.
tables=()
for spec in "$@"; do
    if [[ "$spec" == *.* ]]; then
        tables+=("$spec")
    else
        while IFS= read -r t; do tables+=("$spec.$t"); done < <(
            ch "SELECT name FROM system.tables WHERE database = $(quote_str "$spec") AND engine LIKE '%MergeTree' ORDER BY name")
    fi
done
[ "${#tables[@]}" -gt 0 ] || die "no MergeTree table found in: $*"

mkdir -p "$out"
printf 'database\ttable\trows\tparts\tclickhouse_version\tcreated_utc\n' > "$out/manifest.tsv"
version="$(ch "SELECT version()")"
for spec in "${tables[@]}"; do
    db="${spec%%.*}"; table="${spec#*.}"
    qualified="$(quote_ident "$db").$(quote_ident "$table")"
    engine="$(ch "SELECT engine FROM system.tables WHERE database = $(quote_str "$db") AND name = $(quote_str "$table")")"
    [[ "$engine" == *MergeTree ]] || die "$spec: not a MergeTree table (engine '${engine:-none}')"

    root="$(server_root "$db" "$table")"
    data_path="$(table_data_path "$db" "$table")"
    relative="${data_path#"$root"}"
    [ "$relative" != "$data_path" ] || die "$spec: data path $data_path is not under the server path $root"
    [ -d "$root/shadow" ] || mkdir -p "$root/shadow" 2>/dev/null || true
    [ -r "$data_path" ] || die "$spec: cannot read $data_path: run this where ClickHouse's data directory is readable"

    target="$out/$db/$table"
    mkdir -p "$target/parts"
    ch "SHOW CREATE TABLE $qualified" > "$target/schema.sql"
    active="$(ch "SELECT count() FROM system.parts WHERE active AND database = $(quote_str "$db") AND table = $(quote_str "$table")")"
    if [ "$active" = 0 ]; then
        printf '0\n' > "$target/rows"
        printf '%s\t%s\t0\t0\t%s\t%s\n' "$db" "$table" "$version" "$name" >> "$out/manifest.tsv"
        say "$spec: empty, schema only -> $target"
        continue
    fi
    # One FREEZE at a time per server: the snapshot is found through shadow/increment.txt.
    ch "ALTER TABLE $qualified FREEZE"
    increment="$(cat "$root/shadow/increment.txt")"
    shadow="$root/shadow/$increment"
    [ -d "$shadow/$relative" ] || die "$spec: FREEZE left no snapshot at $shadow/$relative"
    cp -R "$shadow/$relative/." "$target/parts/"
    rm -rf "$shadow"
    # Rows of the snapshot: the parts' own count.txt (every MergeTree part has one), so inserts racing the
    # backup cannot make the number disagree with the parts saved.
    parts=0 rows=0
    for part in "$target"/parts/*/; do
        [ -d "$part" ] || continue
        [ -f "$part/count.txt" ] || die "$spec: part $(basename "$part") has no count.txt"
        parts=$((parts + 1)); rows=$((rows + $(cat "$part/count.txt")))
    done
    printf '%s\n' "$rows" > "$target/rows"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$db" "$table" "$rows" "$parts" "$version" "$name" >> "$out/manifest.tsv"
    say "$spec: $parts parts, $rows rows -> $target"
done

if [ -n "$s3" ]; then
    command -v aws >/dev/null || die "--s3 needs the aws CLI"
    aws s3 cp --recursive --only-show-errors --sse AES256 "$out" "${s3%/}/$name"
    say "uploaded to ${s3%/}/$name"
fi
echo "$out"
