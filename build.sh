#!/usr/bin/env bash
# nginx-engagement: install dependencies, build the module against the
# system nginx, run the test suite, or run the quick start.
#
#   ./build.sh            build build/ngx_http_engagement_module.so
#   ./build.sh test       build, then run the whole suite, the brief soak
#                         (bench/soak/run --ci) and fuzz each parser for
#                         FUZZ_SECONDS (12) s (what CI runs)
#   ./build.sh test --asan  the suite against an AddressSanitizer+UBSan build
#   ./build.sh test browser  only the browser tests (t/browser: the player
#                         SDK in Debian's Chromium, driven by Playwright);
#                         the whole suite runs them after the .t files
#   ./build.sh run        build, then serve conf-examples/quickstart.conf on
#                         127.0.0.1:${PORT:-8080} in the foreground with a
#                         private redis-server (REDIS_PORT=N: use that one)
#   ./build.sh fuzz [s] [event|token|http|dims|analytics]  fuzz the event
#                         parser, the view token format, the writer's parser
#                         of HTTP answers, the User-Agent classifier and the
#                         analytics query string with libFuzzer (default
#                         60 s each)
#   ./build.sh deb        build the Debian package libnginx-mod-http-engagement
#                         into build-deb/ (DEB_OUT=dir for another; see
#                         docs/packaging.md)
#   ./build.sh soak [--minutes N]  the soak with scheduled faults
#                         (bench/soak/run; default the short mode, ~3 min;
#                         its report in bench/results/tmp/soak-*/report.md)
#   ./build.sh deps       only install the Debian packages
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NGX_SRC=/usr/share/nginx/src
PACKAGES=(nginx nginx-dev libhiredis-dev libjansson-dev libssl-dev redis-server
          libtest-base-perl libtext-diff-perl liblist-moreutils-perl
          libtest-longstring-perl libhttp-message-perl liburi-perl
          libipc-run-perl gcc make curl prometheus clickhouse-server)

log() { printf '==> %s\n' "$*" >&2; }

deps() {
    local missing=() p
    for p in "${PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    # the nginx package must not start a system nginx on port 80
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build <builddir> <extra cc opts> <extra ld opts>
build() {
    local bdir="$1" xcc="${2:-}" xld="${3:-}"
    local objs="$bdir/nginx"
    mkdir -p "$objs"

    # shellcheck disable=SC1091
    source "$NGX_SRC/conf_flags"

    # the binary's own compiler and linker flags, minus the build path map
    local v cc ld
    v="$(nginx -V 2>&1)"
    cc="$(sed -n "s/.*--with-cc-opt='\([^']*\)'.*/\1/p" <<<"$v" \
          | sed 's/-ffile-prefix-map=[^ ]*//')"
    ld="$(sed -n "s/.*--with-ld-opt='\([^']*\)'.*/\1/p" <<<"$v")"

    local stamp="$objs/.configured"
    local want="$cc $xcc|$ld $xld|$(cat "$ROOT/config")"
    if [ ! -f "$objs/Makefile" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]
    then
        log "configuring against nginx $(nginx -v 2>&1 | sed 's/.*\///') in $objs"
        (cd "$NGX_SRC" && ./configure --builddir="$objs" \
            "${NGX_CONF_FLAGS[@]}" \
            --with-cc-opt="$cc $xcc" --with-ld-opt="$ld $xld" \
            --add-dynamic-module="$ROOT") >"$bdir/configure.log" 2>&1 || {
            tail -30 "$bdir/configure.log" >&2
            log "configure failed (full log: $bdir/configure.log)"
            exit 1
        }
        printf '%s' "$want" >"$stamp"
    fi

    make -s -f "$objs/Makefile" -C "$NGX_SRC" modules >&2
    # a new file renamed over the old one: nginx processes that have the
    # old one mapped keep running (cp would rewrite it under them)
    if ! cmp -s "$objs/ngx_http_engagement_module.so" \
                "$bdir/ngx_http_engagement_module.so"; then
        cp "$objs/ngx_http_engagement_module.so" "$bdir/.module.so.new"
        mv -f "$bdir/.module.so.new" "$bdir/ngx_http_engagement_module.so"
    fi
    log "built $bdir/ngx_http_engagement_module.so"
}

build_default() { build "$ROOT/build"; }

# for t/140-exactness.t: a module for which each reload is a new layout
# (every zone it finds must be refused) and a content's viewer list for
# one flush holds 64 hashes, not 65536
build_test() {
    build "$ROOT/build-test" \
        "-DNGX_HTTP_ENGAGEMENT_TEST_LAYOUT=1 -DNGX_HTTP_ENGAGEMENT_UV_MAX=64"
}

build_asan() {
    build "$ROOT/build-asan" \
        "-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
        "-fsanitize=address,undefined"
}

run_tests() {
    local asan=0 browser=0 files=()
    for a in "$@"; do
        case "$a" in
            --asan) asan=1 ;;
            browser|t/browser|t/browser/) browser=1 ;;
            *) files+=("$a") ;;
        esac
    done
    # no arguments: the whole suite, the browser tests after the .t files
    if [ ${#files[@]} -eq 0 ] && [ $browser -eq 0 ]; then
        files=("$ROOT/t")
        browser=1
    fi

    export TEST_NGINX_BINARY="${TEST_NGINX_BINARY:-$(command -v nginx || echo /usr/sbin/nginx)}"
    export TEST_NGINX_SERVROOT="$ROOT/t/servroot"
    if [ $asan -eq 1 ]; then
        build_asan
        export TEST_NGINX_LOAD_MODULES="$ROOT/build-asan/ngx_http_engagement_module.so"
        TEST_NGINX_PRELOAD="$(gcc -print-file-name=libasan.so)"
        export TEST_NGINX_PRELOAD
        export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:suppressions=$ROOT/t/asan.supp"
        export LSAN_OPTIONS="suppressions=$ROOT/t/lsan.supp:print_suppressions=0"
        export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
        export TEST_NGINX_ASAN=1
    else
        build_default
        export TEST_NGINX_LOAD_MODULES="$ROOT/build/ngx_http_engagement_module.so"
    fi
    export ENGAGEMENT_ROOT="$ROOT"

    cd "$ROOT"
    if [ ${#files[@]} -gt 0 ]; then
        log "running the suite${asan:+ }$([ $asan -eq 1 ] && echo '(AddressSanitizer)')"
        prove -I "$ROOT/t/lib" -r "${files[@]}"
    fi
    if [ $browser -eq 1 ]; then
        if [ $asan -eq 1 ]; then
            log "SKIP browser tests: they run against the plain build, not under --asan"
        else
            browser_tests
        fi
    fi
}

# t/browser: Playwright (playwright-core from npm, pinned by its
# package-lock.json) driving Debian's Chromium against a real nginx and
# redis-server that the tests start and stop themselves
browser_tests() {
    local dir="$ROOT/t/browser" major
    major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
    if [ "$major" -lt 20 ] || ! command -v npm >/dev/null; then
        log "SKIP browser tests: they need Node.js >= 20 and npm (found: node $(node -v 2>/dev/null || echo none))"
        return 0
    fi
    log "browser tests: npm ci in t/browser"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    # hls.js for the demo page's HLS player (hls.test.mjs skips without it)
    demo_npm || log "could not install hls.js in conf-examples"
    log "browser tests: Chromium $(chromium --version 2>/dev/null | awk '{print $2}' || true)"
    (cd "$dir" && node --test --test-concurrency=1 --test-reporter=spec \
        engagement.test.mjs hls.test.mjs)
}

# the libFuzzer targets: fuzz_event (the event parser), fuzz_token (the
# view token format), fuzz_http (the writer's parser of the upstream's
# answers), fuzz_dims (the User-Agent classifier, the dimensions'
# closed sets and the country's form) and fuzz_analytics (the analytics
# query string); each runs for ${1:-60} seconds; ${2:-all} picks one
fuzz() {
    local secs="${1:-60}" which="${2:-all}" bdir="$ROOT/build/fuzz"
    build_default
    mkdir -p "$bdir"
    local inc=(-I "$ROOT/src" -I "$ROOT/build/nginx")
    local d
    for d in core event event/modules os/unix http http/modules http/v2; do
        inc+=(-I "$NGX_SRC/src/$d")
    done
    local cc=(clang -g -O1 -fsanitize=fuzzer,address,undefined
              -fno-sanitize-recover=undefined "${inc[@]}")
    local rc=0 t corpus maxlen
    for t in event token http dims analytics; do
        [ "$which" = all ] || [ "$which" = "$t" ] || continue
        case "$t" in
            event)
                "${cc[@]}" "$ROOT/fuzz/fuzz_event.c" \
                    "$ROOT/src/input/ngx_http_engagement_event.c" \
                    "$ROOT/src/input/ngx_http_engagement_heartbeat_input.c" \
                    "$ROOT/src/input/ngx_http_engagement_json.c" \
                    "$ROOT/src/input/ngx_http_engagement_json_string.c" \
                    "$ROOT/src/input/ngx_http_engagement_json_keys.c" \
                    -ljansson -o "$bdir/fuzz_event"
                corpus="$ROOT/fuzz/corpus" ;;
            token)
                "${cc[@]}" "$ROOT/fuzz/fuzz_token.c" \
                    "$ROOT/src/input/ngx_http_engagement_token.c" \
                    -lcrypto -o "$bdir/fuzz_token"
                corpus="$ROOT/fuzz/corpus-token" ;;
            http)
                "${cc[@]}" "$ROOT/fuzz/fuzz_http.c" \
                    "$ROOT/src/sink/writer/ngx_http_engagement_writer_http.c" \
                    -o "$bdir/fuzz_http"
                corpus="$ROOT/fuzz/corpus-http" ;;
            dims)
                "${cc[@]}" "$ROOT/fuzz/fuzz_dims.c" \
                    "$ROOT/src/input/ngx_http_engagement_dimension.c" \
                    -o "$bdir/fuzz_dims"
                corpus="$ROOT/fuzz/corpus-dims" ;;
            analytics)
                "${cc[@]}" "$ROOT/fuzz/fuzz_analytics.c" \
                    "$ROOT/src/input/ngx_http_engagement_query.c" \
                    -o "$bdir/fuzz_analytics"
                corpus="$ROOT/fuzz/corpus-analytics" ;;
        esac
        # the answer's head buffer is 4096 bytes: room to fill it and more
        maxlen=4096
        [ "$t" = http ] && maxlen=4400
        mkdir -p "$ROOT/fuzz/corpus-run/$t"
        log "fuzzing fuzz_$t for ${secs}s"
        "$bdir/fuzz_$t" -max_total_time="$secs" -max_len="$maxlen" \
            -print_final_stats=1 "$ROOT/fuzz/corpus-run/$t" "$corpus" \
            >"$bdir/fuzz_$t.log" 2>&1 || rc=$?
        grep -E '^(stat::number_of_executed_units|stat::peak_rss|==|SUMMARY)' \
            "$bdir/fuzz_$t.log" || true
        if [ $rc -ne 0 ]; then
            tail -40 "$bdir/fuzz_$t.log" >&2
            log "fuzz_$t found a failure (log: $bdir/fuzz_$t.log)"
            return $rc
        fi
    done
    return $rc
}

# listening <port>: something accepts connections on 127.0.0.1:<port>
listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# hls.js for the demo page's HLS player: npm ci in conf-examples (pinned by
# its package-lock.json), again only when the lock file changed
demo_npm() {
    local dir="$ROOT/conf-examples"
    [ -f "$dir/node_modules/.package-lock.json" ] \
        && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ] \
        && return 0
    if ! command -v npm >/dev/null; then
        deps npm || return 1
    fi
    log "npm ci in conf-examples (hls.js for the demo page)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
}

run_quickstart() {
    build_default
    local port="${PORT:-8080}" prefix="$ROOT/build/run"
    local rport="${REDIS_PORT:-}" rpid=""
    mkdir -p "$prefix/logs" "$prefix/modules" "$prefix/temp" "$prefix/redis"
    ln -sfn "$ROOT/build/ngx_http_engagement_module.so" \
        "$prefix/modules/ngx_http_engagement_module.so"
    ln -sfn "$ROOT/conf-examples/html" "$prefix/html"
    ln -sfn "$ROOT/sdk" "$prefix/sdk"
    ln -sfn "$ROOT/conf-examples/node_modules" "$prefix/node_modules"
    # the demo page's video as WebM and as HLS, made once by ffmpeg
    # (git-ignored)
    "$ROOT/conf-examples/make-demo-media.sh" "$ROOT/conf-examples/html/media" \
        || log "could not make the demo video (ffmpeg); the page works without it"
    demo_npm || log "could not install hls.js with npm; the demo page plays the WebM file only"

    if listening "$port"; then
        log "127.0.0.1:$port is already in use; pick another: PORT=9090 ./build.sh run"
        return 1
    fi
    if [ -z "$rport" ]; then
        # a private Redis for the demo, stopped with the rest
        rport=$((port + 1000))
        if listening "$rport"; then
            log "127.0.0.1:$rport (the demo's private Redis) is already in use;" \
                "use that Redis with REDIS_PORT=$rport, or another PORT"
            return 1
        fi
        redis-server --port "$rport" --bind 127.0.0.1 --dir "$prefix/redis" \
            --daemonize no --save '' --appendonly yes \
            --logfile "$prefix/redis/redis.log" &
        rpid=$!
        # started means: our process is alive and answers PING
        local i
        for i in $(seq 100); do
            kill -0 "$rpid" 2>/dev/null || break
            [ "$(redis-cli -p "$rport" ping 2>/dev/null)" = PONG ] && break
            sleep 0.05
        done
        if ! kill -0 "$rpid" 2>/dev/null \
            || [ "$(redis-cli -p "$rport" ping 2>/dev/null)" != PONG ]; then
            tail -5 "$prefix/redis/redis.log" >&2 || true
            kill -TERM "$rpid" 2>/dev/null || true
            wait "$rpid" 2>/dev/null || true
            log "redis-server did not start on 127.0.0.1:$rport (its log is above)"
            return 1
        fi
        log "redis-server on 127.0.0.1:$rport (pid $rpid, data in $prefix/redis)"
    elif [ "$(redis-cli -p "$rport" ping 2>/dev/null)" != PONG ]; then
        log "no Redis answers PING on 127.0.0.1:$rport (REDIS_PORT)"
        return 1
    else
        log "using the Redis already listening on 127.0.0.1:$rport"
    fi

    sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$port/" \
        -e "s/127\.0\.0\.1:6379/127.0.0.1:$rport/" \
        "$ROOT/conf-examples/quickstart.conf" >"$prefix/quickstart.conf"

    "$(command -v nginx || echo /usr/sbin/nginx)" -p "$prefix/" \
        -c "$prefix/quickstart.conf" -g 'daemon off;' &
    local pid=$!
    trap 'kill -QUIT $pid 2>/dev/null || true' INT TERM
    log "nginx-engagement on http://127.0.0.1:$port/ (pid $pid; Ctrl-C stops)"
    log "try: curl -sX POST -H 'Content-Type: application/json' -d '{\"contentId\":\"v1\",\"sessionId\":\"s1\",\"durationMs\":3000}' http://127.0.0.1:$port/engagement/view"
    wait $pid || true
    # a signal interrupts the first wait; wait again for nginx to finish
    if kill -0 $pid 2>/dev/null; then wait $pid || true; fi
    if [ -n "$rpid" ]; then
        kill -TERM "$rpid" 2>/dev/null || true
        wait "$rpid" 2>/dev/null || true
    fi
    log "stopped"
    return 0
}

# --- ./build.sh deb: the Debian package libnginx-mod-http-engagement -------
# The version: from a tag vX.Y.Z (or X.Y.Z) that `git describe --tags`
# finds: X.Y.Z on the tag itself, X.Y.Z+git<date>.<n>.<sha> n commits
# after it (a "-" in the tag becomes "~": v1.2.0-rc1 is 1.2.0~rc1, before
# 1.2.0); with no tag, 0.0~git<date>.<count>.<sha> (date: HEAD's commit
# date in UTC, count: commits in HEAD's history, so that later commits of
# one branch sort later); "+dirty" when the packaged files have
# uncommitted changes; DEB_VERSION=... overrides it all.
deb_version() {
    [ -n "${DEB_VERSION:-}" ] && { echo "$DEB_VERSION"; return; }
    if ! git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
        echo "0.0~unknown$(date -u +%Y%m%d)"; return
    fi
    local date sha count desc tag n v
    date="$(TZ=UTC git -C "$ROOT" log -1 --format=%cd --date=format-local:%Y%m%d)"
    sha="$(git -C "$ROOT" rev-parse --short=7 HEAD)"
    count="$(git -C "$ROOT" rev-list --count HEAD)"
    if desc="$(git -C "$ROOT" describe --tags --long --match '[v0-9]*' 2>/dev/null)"
    then
        # <tag>-<n>-g<sha>
        n="${desc%-g*}"; n="${n##*-}"
        tag="${desc%-*-g*}"; tag="${tag#v}"; tag="${tag//-/\~}"
        if [ "$n" = 0 ]; then v="$tag"; else v="$tag+git$date.$n.$sha"; fi
    else
        v="0.0~git$date.$count.$sha"
    fi
    if [ -n "$(git -C "$ROOT" status --porcelain -- config src debian README.md docs LICENSE 2>/dev/null)" ]; then
        v="$v+dirty"
    fi
    echo "$v"
}

# builds build-deb/libnginx-mod-http-engagement_<version>_<arch>.deb (or
# in $DEB_OUT) from a copy of the packaged files under build-deb/deb-src, with
# the changelog generated there: nothing is written in the source tree;
# lintian checks the result when it is installed (LINTIAN=0: not)
build_deb() {
    local out="${DEB_OUT:-$ROOT/build-deb}" version src sha subject when
    version="$(deb_version)"
    mkdir -p "$out"
    out="$(cd "$out" && pwd)"
    if [ "$out" = "$ROOT" ]; then
        log "DEB_OUT must not be the source tree itself"; return 1
    fi
    src="$out/deb-src/nginx-engagement-$version"
    rm -rf "$out/deb-src"
    mkdir -p "$src"
    # the files the package is built from: tracked ones when this is a git
    # checkout (uncommitted edits and new files included), else the same folders
    local paths=(config src debian README.md LICENSE docs)
    if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard -- "${paths[@]}" \
            | xargs -0 cp --parents -t "$src")
    else
        (cd "$ROOT" && cp -r --parents -t "$src" "${paths[@]}")
    fi
    sha="$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
    subject="$(git -C "$ROOT" log -1 --format=%s 2>/dev/null | cut -c1-60 || true)"
    when="$(git -C "$ROOT" log -1 --format=%cD 2>/dev/null || date -R)"
    {
        echo "nginx-engagement ($version) bookworm; urgency=medium"
        echo
        if [ "$sha" = unknown ]; then
            echo "  * Built by ./build.sh deb outside a git checkout."
        else
            echo "  * Built by ./build.sh deb from commit $sha."
        fi
        [ -n "$subject" ] && echo "    Last change: $subject"
        echo
        echo " -- nginx-engagement maintainers <maintainers@users.noreply.h-seed-6d296865.example>  $when"
    } >"$src/debian/changelog"

    log "building libnginx-mod-http-engagement $version in $src"
    (cd "$src" && DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-} parallel=$(nproc)" \
        dpkg-buildpackage -b -us -uc) >"$out/build.log" 2>&1 || {
        tail -40 "$out/build.log" >&2
        log "dpkg-buildpackage failed (full log: $out/build.log)"
        return 1
    }
    local deb
    deb="$(ls "$out/deb-src"/libnginx-mod-http-engagement_"${version}"_*.deb)"
    rm -f "$out"/libnginx-mod-http-engagement_*.deb \
          "$out"/libnginx-mod-http-engagement-dbgsym_*.deb \
          "$out"/nginx-engagement_*.changes "$out"/nginx-engagement_*.buildinfo
    mv "$out/deb-src"/*.deb "$out/deb-src"/*.changes "$out/deb-src"/*.buildinfo "$out/"
    deb="$out/$(basename "$deb")"
    if [ "${LINTIAN:-1}" != 0 ] && command -v lintian >/dev/null; then
        lintian --info "$out"/*.changes >"$out/lintian.txt" 2>&1 || true
        log "lintian: $(grep -c '^[EW]:' "$out/lintian.txt" || true) errors/warnings (see $out/lintian.txt)"
    fi
    log "built $deb"
    echo "$deb"
}

cmd="${1:-build}"
[ $# -gt 0 ] && shift
case "$cmd" in
    deps)  deps ;;
    build) deps; build_default ;;
    asan)  deps; build_asan ;;
    test-build) build_test ;;
    test)  deps clang libclang-rt-14-dev gdb chromium ffmpeg
           run_tests "$@"
           # the whole suite goes on with the brief soak (bench/soak/run
           # --ci, about 2 min; SOAK=0 skips it) and ends with a short,
           # bounded fuzz of every parser (FUZZ_SECONDS=0 skips it;
           # ./build.sh fuzz runs longer)
           if [ $# -eq 0 ] && [ "${SOAK:-1}" != 0 ]; then
               log "the soak, brief (bench/soak/run --ci)"
               "$ROOT/bench/soak/run" --no-build --ci
           fi
           if [ $# -eq 0 ] && [ "${FUZZ_SECONDS:-12}" != 0 ]; then
               fuzz "${FUZZ_SECONDS:-12}"
           fi ;;
    run)   deps ffmpeg; run_quickstart ;;
    fuzz)  deps clang libclang-rt-14-dev; fuzz "$@" ;;
    deb)   deps debhelper dpkg-dev; build_deb ;;
    soak)  deps; build_default; "$ROOT/bench/soak/run" --no-build "$@" ;;
    *) echo "usage: $0 [build|test-build|test [--asan] [t/file.t ...] [browser]|run|fuzz [secs] [event|token|http|dims|analytics]|deb|soak [--minutes N]|deps]" >&2; exit 2 ;;
esac
