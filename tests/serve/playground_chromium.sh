#!/usr/bin/env bash
# The web playground in headless Chromium (Debian's `chromium`): loads "/" from `mambalm serve`,
# which sends a prompt (autorun query parameters) in chat mode and in completion mode; the page
# must show streamed tokens arriving and finish. Exits 77 (ctest: skipped) when Chromium is not
# installed. Usage: playground_chromium.sh PATH/TO/mambalm [SCREENSHOT.png]
set -uo pipefail
MAMBALM=$1
SHOT=${2:-}
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
  echo "SKIPPED: chromium is not installed (apt-get install chromium)"
  exit 77
fi
source "$(dirname "$0")/test_server.sh"
start_test_server hybrid-tiny 5 2
URL="http://127.0.0.1:$PORT"

fail=0
for mode in chat completion; do
  # Virtual time lets the page's timers run; the budget ends the run once the page is idle.
  dom=$(timeout 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu --user-data-dir="$WORK/profile-$mode" \
        --virtual-time-budget=60000 --dump-dom \
        "$URL/?mode=$mode&prompt=Hello%20there&max_tokens=24&temperature=0&autorun=1" 2>"$WORK/chromium.log")
  reply=$(grep -o '<span class="turn-assistant">[^<]*</span>' <<<"$dom" | sed -E 's/<[^>]+>//g')
  ntok=$(grep -o '<span id="ntok">[0-9]*</span>' <<<"$dom" | grep -o '[0-9]\+')
  if ! grep -q 'data-done="1"' <<<"$dom" || ! grep -q '<span id="status">done</span>' <<<"$dom" ||
     [ -z "${ntok:-}" ] || [ "$ntok" -lt 1 ]; then
    echo "FAILED ($mode): the page did not finish a streamed reply"
    grep -E 'id="status"|id="ntok"|turn-error' <<<"$dom" | head -5
    fail=1
  else
    echo "playground ($mode): $ntok tokens streamed; reply: ${reply:0:60}"
  fi
done
# The page's requests went through the streaming endpoints.
metrics=$(curl -s "$URL/metrics" 2>/dev/null || true)
if [ -n "$metrics" ] && ! grep -q 'endpoint="/v1/chat/completions",status="200"' <<<"$metrics"; then
  echo "FAILED: the server saw no chat completion from the page"
  fail=1
fi
if [ -n "$SHOT" ]; then
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --user-data-dir="$WORK/profile-shot" --hide-scrollbars \
    --window-size=1200,760 --virtual-time-budget=60000 --screenshot="$SHOT" \
    "$URL/?mode=chat&prompt=Hello%20there&max_tokens=24&temperature=0&autorun=1" 2>/dev/null
fi
exit $fail
