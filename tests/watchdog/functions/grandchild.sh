#!/bin/sh
# Starts a grandchild and records its pid, then waits for it: a timeout must kill both.
sleep 60 &
echo $! > "$HOLD_DIR/grandchild.pid"
wait
