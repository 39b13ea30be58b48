#!/bin/sh
# Makes the demo page's video, media/demo.webm: 10 s of ffmpeg's test
# pattern (a counter, so seeks and replays are visible) as VP8 in WebM,
# 480x270, no audio, a key frame every second. Made at run and test time
# by Debian's ffmpeg, never committed. Usage: make-demo-media.sh DIR
set -eu
dir="${1:?usage: $0 DIR}"
mkdir -p "$dir"
[ -s "$dir/demo.webm" ] && exit 0
ffmpeg -nostdin -loglevel error -f lavfi \
    -i testsrc=duration=10:size=480x270:rate=25 \
    -c:v libvpx -deadline good -cpu-used 16 -b:v 250k -g 25 -an \
    -y "$dir/.demo.webm.tmp.webm"
mv -f "$dir/.demo.webm.tmp.webm" "$dir/demo.webm"
