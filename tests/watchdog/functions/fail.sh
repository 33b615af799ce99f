#!/bin/sh
# Prints on both streams, then fails.
echo "some output"
echo "oops on stderr" >&2
exit 3
