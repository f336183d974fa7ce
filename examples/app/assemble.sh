#!/bin/sh
# assemble.sh VERSION DEST: writes the example app's source tree at VERSION into DEST.
#
# One tree (src/) holds what every version shares; versions/<v>/ holds what a version adds or
# replaces (the notes app's models and migrations). A version is its layers, in order, so its
# migrations are its predecessors' plus its own. v2-broken is v2 with a bug in its migration, the
# release that v2 fixes. The Dockerfile and hack/app-images.sh both build from this.
set -eu
version=$1 dest=$2
here=$(cd "$(dirname "$0")" && pwd)
case $version in
v1) layers="v1" ;;
v2) layers="v1 v2" ;;
v3) layers="v1 v2 v3" ;;
v2-broken) layers="v1 v2 v2-broken" ;;
*) echo "assemble.sh: unknown version '$version' (v1, v2, v3, v2-broken)" >&2; exit 2 ;;
esac
mkdir -p "$dest"
cp -R "$here/src/." "$dest/"
for l in $layers; do cp -R "$here/versions/$l/." "$dest/"; done
# The version the app reports (summon_platform/settings.py) and the static component serves.
mkdir -p "$dest/static"
printf '%s\n' "$version" >"$dest/static/version.txt"
