#!/bin/sh
# Retention for ClickHouse 18.16, which has no TTL clause: drops the
# partitions of eng.* whose whole period is older than the table's
# retention. Run it daily from cron, e.g.
#   17 3 * * * conf-examples/clickhouse/retention.sh http://127.0.0.1:8123/
#
# Retention in days, by table (environment variables):
#   MINUTE_DAYS (default 30)   *_minute: daily partitions
#   HOUR_DAYS   (default 92)   *_hour: monthly partitions
#   DAY_DAYS    (default 1100) *_day: yearly partitions
#   EVENTS_DAYS (default 400)  events and batches: monthly partitions
# A partition goes only once all of it is older than the cutoff, so a
# monthly partition is kept up to a month past its retention.
# DRY_RUN=1 prints the statements instead of running them.
set -eu
url="${1:-http://127.0.0.1:8123/}"

q() {
    curl -sS --fail-with-body --data-binary "$1" "$url"
}

cutoff() {
    # the first day still kept, as YYYYMMDD
    date -u -d "-$1 days" +%Y%m%d
}

minute_cut=$(cutoff "${MINUTE_DAYS:-30}")
hour_cut=$(cutoff "${HOUR_DAYS:-92}")
day_cut=$(cutoff "${DAY_DAYS:-1100}")
events_cut=$(cutoff "${EVENTS_DAYS:-400}")

n=0
q "SELECT DISTINCT table, partition FROM system.parts
   WHERE database = 'eng' AND active FORMAT TabSeparated" |
while IFS="$(printf '\t')" read -r table part; do
    case "$table" in
        *_minute) cut=$minute_cut ;;
        *_hour)   cut=$hour_cut ;;
        *_day)    cut=$day_cut ;;
        events|batches) cut=$events_cut ;;
        *) continue ;;
    esac
    part=$(printf '%s' "$part" | tr -d "'")
    case "$part" in
        [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]) c=$cut ;;
        [0-9][0-9][0-9][0-9][0-9][0-9]) c=$(printf '%s' "$cut" | cut -c1-6) ;;
        [0-9][0-9][0-9][0-9]) c=$(printf '%s' "$cut" | cut -c1-4) ;;
        *) echo "retention: eng.$table: partition $part is not a date; kept" >&2
           continue ;;
    esac
    # the partition's period ends before the cutoff's period starts
    [ "$part" -lt "$c" ] || continue
    stmt="ALTER TABLE eng.$table DROP PARTITION $part"
    if [ "${DRY_RUN:-0}" = 1 ]; then
        echo "$stmt"
    else
        q "$stmt" >/dev/null
        echo "retention: dropped eng.$table partition $part"
    fi
done
