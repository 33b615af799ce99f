#!/bin/sh
# Writes a first line at once and a second only after the test creates "$HOLD_DIR/release".
cat >/dev/null
echo first
while [ ! -e "$HOLD_DIR/release" ]; do sleep 0.01; done
echo second
