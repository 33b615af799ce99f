#!/bin/sh
# Reads its body, then writes one line on stdout and one on stderr.
cat >/dev/null
echo "to stdout"
echo "to stderr" >&2
