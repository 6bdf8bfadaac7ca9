#!/usr/bin/env bash
# Mechanical house rules: no unbounded or unchecked string functions.
set -uo pipefail
cd "$(dirname "$0")/.."
banned='\b(strcpy|strcat|strncpy|sprintf|vsprintf|gets|strtok|atoi|atol|sscanf)\s*\('
if grep -rnE "$banned" src tests/unit tests/fuzz --include='*.c' --include='*.h' | grep -vE '^\S+:\s*//|snprintf|vsnprintf'; then
  echo "checksrc: banned function used (see STYLE.md: Bytes and strings)"; exit 1
fi
echo "checksrc: ok"
