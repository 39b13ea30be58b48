#!/bin/sh
# Makes the demo page's video twice from one source, 10 s of ffmpeg's test
# pattern (a counter, so seeks and replays are visible), 480x270, no audio:
#   media/demo.webm        VP8 in WebM, a key frame every second
#   media/hls/index.m3u8   HLS (VOD): H.264 (yuv420p, what browsers
#   media/hls/segN.ts      decode) in five 2 s MPEG-TS segments, a key
#                          frame every 2 s so each cut falls on one
# Made at run and test time by Debian's ffmpeg, never committed. Each is
# made once (kept when present). Usage: make-demo-media.sh DIR
set -eu
dir="${1:?usage: $0 DIR}"
mkdir -p "$dir"
src="testsrc=duration=10:size=480x270:rate=25"
if [ ! -s "$dir/demo.webm" ]; then
    ffmpeg -nostdin -loglevel error -f lavfi -i "$src" \
        -c:v libvpx -deadline good -cpu-used 16 -b:v 250k -g 25 -an \
        -y "$dir/.demo.webm.tmp.webm"
    mv -f "$dir/.demo.webm.tmp.webm" "$dir/demo.webm"
fi
if [ ! -s "$dir/hls/index.m3u8" ]; then
    # made aside, then moved in whole: a player never sees half of it
    rm -rf "$dir/.hls.tmp"
    mkdir -p "$dir/.hls.tmp"
    ffmpeg -nostdin -loglevel error -f lavfi -i "$src" \
        -c:v libx264 -preset veryfast -pix_fmt yuv420p -b:v 300k \
        -g 50 -keyint_min 50 -sc_threshold 0 -an \
        -f hls -hls_time 2 -hls_list_size 0 -hls_playlist_type vod \
        -hls_segment_filename "$dir/.hls.tmp/seg%d.ts" \
        "$dir/.hls.tmp/index.m3u8"
    rm -rf "$dir/hls"
    mv "$dir/.hls.tmp" "$dir/hls"
fi
