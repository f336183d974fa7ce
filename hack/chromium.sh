#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests, unless it is there, and prints its path (the
# last line of stdout): export SUMMON_TEST_CHROMIUM="$(hack/chromium.sh)". The tests run it
# headless; nothing but apt-get downloads anything.
set -euo pipefail

log() { printf 'chromium: %s\n' "$*" >&2; }

if ! path=$(command -v chromium); then
	if [ "$(id -u)" -ne 0 ]; then
		log "chromium is not installed and installing it needs root: apt-get install chromium"
		exit 1
	fi
	log "installing Debian's chromium (about a minute)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
	path=$(command -v chromium)
fi
"$path" --version >&2
echo "$path"
