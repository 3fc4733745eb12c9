#!/usr/bin/env bash
# Restores tables saved by backup.sh: creates the database and table from schema.sql when missing, copies the
# parts into the table's detached/ directory and attaches them (ALTER TABLE … ATTACH PART).
#
#   deploy/backup/restore.sh [--replace] BACKUP [TABLE...]
#
#   BACKUP     DEST_DIR/NAME written by backup.sh, or s3://bucket/prefix/NAME (downloaded first with the aws CLI)
#   TABLE      db.table to restore (default: every table of the backup)
#   --replace  TRUNCATE the table before attaching (otherwise the parts are added to what the table holds)
#
# Runs where the server's data directory is writable (the ClickHouse host, or inside its container).
# Connection from CLICKHOUSE_HOST/PORT/USER/PASSWORD (see common.sh).
set -euo pipefail
source "$(dirname "$0")/common.sh"

replace=0
while [ $# -gt 0 ]; do
    case "$1" in
        --replace) replace=1; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        --*) die "unknown option $1" ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || die "usage: restore.sh [--replace] BACKUP [TABLE...]"
backup="$1"; shift

if [[ "$backup" == s3://* ]]; then
    command -v aws >/dev/null || die "an s3:// backup needs the aws CLI"
    local_copy="$(mktemp -d)"
    trap 'rm -rf "$local_copy"' EXIT
    aws s3 cp --recursive --only-show-errors "$backup" "$local_copy"
    backup="$local_copy"
fi
[ -f "$backup/manifest.tsv" ] || die "$backup has no manifest.tsv: not a backup.sh backup"

tables=("$@")
if [ "${#tables[@]}" -eq 0 ]; then
    while IFS=$'\t' read -r db table _; do tables+=("$db.$table"); done < <(tail -n +2 "$backup/manifest.tsv")
fi

for spec in "${tables[@]}"; do
    db="${spec%%.*}"; table="${spec#*.}"
    source_dir="$backup/$db/$table"
    [ -f "$source_dir/schema.sql" ] || die "$spec is not in $backup"
    qualified="$(quote_ident "$db").$(quote_ident "$table")"

    ch "CREATE DATABASE IF NOT EXISTS $(quote_ident "$db")"
    if [ "$(ch "SELECT count() FROM system.tables WHERE database = $(quote_str "$db") AND name = $(quote_str "$table")")" = 0 ]; then
        ch "$(cat "$source_dir/schema.sql")"
        say "$spec: created from schema.sql"
    elif [ "$replace" = 1 ]; then
        ch "TRUNCATE TABLE $qualified"
    fi
    before="$(ch "SELECT count() FROM $qualified")"

    data_path="$(table_data_path "$db" "$table")"
    detached="${data_path%/}/detached"
    [ -d "$detached" ] && [ -w "$detached" ] || die "$spec: cannot write $detached: run this where ClickHouse's data directory is writable"
    owner="$(stat -c %u:%g "$data_path")"
    attached=0
    for part in "$source_dir"/parts/*/; do
        [ -d "$part" ] || continue
        part_name="$(basename "$part")"
        [ ! -e "$detached/$part_name" ] || die "$spec: $detached/$part_name exists already (left from an earlier restore?)"
        cp -R "$part" "$detached/$part_name"
        chown -R "$owner" "$detached/$part_name" 2>/dev/null || true
        ch "ALTER TABLE $qualified ATTACH PART $(quote_str "$part_name")"
        attached=$((attached + 1))
    done
    after="$(ch "SELECT count() FROM $qualified")"
    saved="$(cat "$source_dir/rows")"
    say "$spec: attached $attached parts, $((after - before)) rows (backup recorded $saved)"
    if [ $((after - before)) != "$saved" ]; then
        die "$spec: restored $((after - before)) rows but the backup recorded $saved"
    fi
done
