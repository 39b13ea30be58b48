#!/bin/sh
# Loads schema.sql into a ClickHouse server over its HTTP interface, one
# statement per request (ClickHouse 18.16 takes one per request), so no
# clickhouse-client is needed. Stops at the first statement refused.
#
#   conf-examples/clickhouse/load-schema.sh [http://127.0.0.1:8123/]
set -eu
url="${1:-http://127.0.0.1:8123/}"
schema="$(dirname "$0")/schema.sql"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# drop comments, then cut at each ';' that ends a line
sed -e 's/--.*$//' "$schema" | awk -v dir="$tmp" '
    /[^[:space:]]/ { buf = buf $0 "\n" }
    /;[[:space:]]*$/ { n++; sub(/;[[:space:]]*\n$/, "\n", buf)
                       printf "%s", buf > (dir "/" sprintf("%04d", n)); buf = "" }'

n=0
for f in "$tmp"/*; do
    [ -e "$f" ] || continue
    grep -q '[^[:space:]]' "$f" || continue
    if ! out="$(curl -sS --fail-with-body --data-binary @"$f" "$url" 2>&1)"; then
        echo "load-schema: ClickHouse at $url refused statement $((n + 1)):" >&2
        sed 's/^/    /' "$f" >&2
        echo "$out" >&2
        exit 1
    fi
    n=$((n + 1))
done
echo "load-schema: $n statements applied to $url"
