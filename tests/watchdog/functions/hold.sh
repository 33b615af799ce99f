#!/bin/sh
# Marks that a call started, then holds it until the test creates "$HOLD_DIR/release".
touch "$HOLD_DIR/started.$$"
while [ ! -e "$HOLD_DIR/release" ]; do sleep 0.01; done
echo released
