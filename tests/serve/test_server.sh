# Sourced by the serve shell tests: start_test_server PRESET SEED MAX_BATCH makes a random model
# of PRESET (byte tokenizer) in a temporary WORK directory and starts `$MAMBALM serve` on a free
# port; PORT is set once it listens. The server and WORK go away when the test exits.
WORK=$(mktemp -d)
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER"
  rm -rf "$WORK"
}
trap cleanup EXIT
start_test_server() {
  "$MAMBALM" init --preset "$1" --tokenizer bytes --seed "$2" --out "$WORK/model" >/dev/null || exit 1
  "$MAMBALM" serve --model "$WORK/model" --port 0 --port-file "$WORK/port" --max-batch "$3" --max-context 512 \
    2>"$WORK/server.log" &
  SERVER=$!
  for _ in $(seq 300); do [ -s "$WORK/port" ] && break; sleep 0.1; done
  [ -s "$WORK/port" ] || { echo "FAILED: the server did not start"; cat "$WORK/server.log"; exit 1; }
  PORT=$(cat "$WORK/port")
}
