#!/usr/bin/env bash
# Builds the example app's images (examples/app, docs/example-app.md) as OCI image archives, from
# Debian 12 packages, without Docker and without any registry: debootstrap a minimal rootfs, add
# the packages of examples/app/debian-packages.txt (apt-get --download-only against the rootfs's
# dpkg status, then apt in a chroot), trim it, and pack it with each app version as a second
# layer. The Dockerfile in examples/app builds the same image with Docker.
#
#   hack/app-images.sh                        # build (or find) the images; last stdout line: their directory
#   hack/app-images.sh run DIR VERSION CMD... # run CMD in VERSION's image of DIR as its pods would (sandbox)
#
# The directory, ${SUMMON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/summon}/images/<key>/, is
# keyed by everything that goes into the images (this script, the package list, the app's
# files) and holds:
#   summon-example-<v>.tar   one OCI archive per version, image ref localhost/summon-example:<v>
#                            (`ctr -n k8s.io images import`, then imagePullPolicy: Never)
#   versions                 the versions, one a line: v1 v2 v3 v2-broken
#   app/<v>/                 the second layer of each image, unpacked (src/, var/www/static/)
#   rootfs                   a link to the first layer, unpacked (shared by every version)
# The rootfs is the slow part (several minutes cold) and is cached on its own key, so a change
# of the app rebuilds only the small app layers. A key unused for a week is removed.
#
# Needs root (debootstrap, chroot, unshare), apt-get and dpkg (it installs debootstrap when
# missing), and Debian's package mirror (SUMMON_DEBIAN_MIRROR overrides debootstrap's default).
# Logs go to stderr. Concurrent runs wait for each other on a lock, as hack/kube-binaries.sh does.
set -euo pipefail

log() { printf 'app-images: %s\n' "$*" >&2; }

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(git -C "$script_dir" rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/.." && pwd))"
app_dir="$root/examples/app"
cache="${SUMMON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/summon}/images"
suite=bookworm
versions=(v1 v2 v3 v2-broken)
repo=localhost/summon-example

# The environment every container of the image gets, as the Dockerfile's ENV sets it
# (docs/app-image.md: nothing written outside /tmp, bytecode compiled at build time).
image_env=(
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	LANG=C.UTF-8
	PYTHONUNBUFFERED=1
	PYTHONDONTWRITEBYTECODE=1
	DJANGO_SETTINGS_MODULE=summon_platform.settings
	HOME=/tmp
	XDG_CONFIG_HOME=/tmp
	XDG_DATA_HOME=/tmp
)
image_user=10001
image_workdir=/src

packages() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$app_dir/debian-packages.txt"; }

# build_rootfs DIR: Debian minbase, the app's packages, the image's user, trimmed. Its text is
# part of the rootfs key (declare -f), so changing it rebuilds the rootfs.
build_rootfs() {
	local dir=$1 debs
	debs="$(dirname "$dir")/debs"
	rm -rf "$dir" "$debs"
	mkdir -p "$dir" "$debs/partial"
	log "debootstrap --variant=minbase $suite (several minutes cold) ..."
	nice -n 10 debootstrap --variant=minbase "$suite" "$dir" ${SUMMON_DEBIAN_MIRROR:+"$SUMMON_DEBIAN_MIRROR"} >&2
	log "downloading $(packages | tr '\n' ' ')..."
	# Resolved against the rootfs's dpkg status, so only what it lacks is fetched.
	apt_retry apt-get install -y --download-only --no-install-recommends \
		-o Dir::Cache::archives="$debs" -o Dir::State::status="$dir/var/lib/dpkg/status" \
		$(packages) >&2
	mkdir -p "$dir/tmp/debs"
	cp "$debs"/*.deb "$dir/tmp/debs/"
	# No service starts in a chroot (caddy's postinst would try).
	printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
	chmod 755 "$dir/usr/sbin/policy-rc.d"
	log "installing $(ls "$debs"/*.deb | wc -l) packages in the rootfs ..."
	# apt, not a bare dpkg -i, orders them (python3 pre-depends on python3-minimal). It has no
	# package lists, so it takes every file from /tmp/debs; as root, since its _apt user may not
	# read them there.
	chroot "$dir" env DEBIAN_FRONTEND=noninteractive sh -c \
		'apt-get install -y --no-install-recommends -o APT::Sandbox::User=root /tmp/debs/*.deb' >&2
	rm -rf "$dir/tmp/debs" "$debs" "$dir/usr/sbin/policy-rc.d"
	# The image's user: numeric for runAsNonRoot, group 0, home /tmp (the one writable place).
	chroot "$dir" useradd --uid "$image_user" --gid 0 --home-dir /tmp --no-create-home \
		--shell /usr/sbin/nologin app >&2
	# Mount points: the app layer's folders, the config Secret and beat's schedule emptyDir.
	mkdir -p "$dir/src" "$dir/var/www/static" "$dir/etc/summon" "$dir/var/lib/celerybeat"
	# Trim what no container reads: docs, man pages, locales, apt's lists and caches, logs.
	rm -rf "$dir"/usr/share/{doc,man,info,locale,lintian,linda}/* "$dir"/var/lib/apt/lists/* \
		"$dir"/var/cache/apt/* "$dir"/var/cache/debconf/*-old "$dir"/var/log/* "$dir"/root/.cache
	# Translations' sources (Django's are most of its size); the compiled .mo files stay.
	find "$dir/usr/lib/python3" -name '*.po' -delete
}

# need_debootstrap installs Debian's debootstrap when this machine lacks it (a fresh one does), as
# hack/node-packages.sh installs containerd: nothing installed by hand survives to a new machine.
need_debootstrap() {
	command -v debootstrap >/dev/null && return 0
	log "installing debootstrap"
	apt_retry apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt_retry apt-get install -y -qq --no-install-recommends debootstrap >&2
	command -v debootstrap >/dev/null || { log "debootstrap is missing and apt-get could not install it"; exit 1; }
}

# apt_retry CMD...: the CI run on this machine may hold the dpkg/apt lock for a few minutes.
apt_retry() {
	local i
	for i in $(seq 60); do
		if "$@" -o DPkg::Lock::Timeout=60; then return 0; fi
		log "apt-get failed (lock held?), retrying in 10 s ($i/60)"
		sleep 10
	done
	return 1
}

# pack_layer DIR OUT: a gzip-compressed layer of DIR's content; prints "<diff_id> <digest> <size>".
# No extended attributes (GNU tar's default): a file capability would stop a binary from starting
# under allowPrivilegeEscalation: false.
pack_layer() {
	local dir=$1 out=$2 diff
	tar --numeric-owner --sort=name -C "$dir" -cf "$out.tar" .
	diff=$(sha256sum "$out.tar" | cut -d' ' -f1)
	gzip -n -6 -c "$out.tar" >"$out"
	rm -f "$out.tar"
	echo "$diff $(sha256sum "$out" | cut -d' ' -f1) $(stat -c %s "$out")"
}

json_strings() { local s sep=; printf '['; for s in "$@"; do printf '%s"%s"' "$sep" "$s"; sep=,; done; printf ']'; }

# write_archive OUT REF APP_BLOB APP_DIFF_ID APP_DIGEST APP_SIZE: an OCI image archive of the
# rootfs layer and one app layer.
write_archive() {
	local out=$1 ref=$2 app_blob=$3 app_diff=$4 app_digest=$5 app_size=$6 work cfg cd cs man md ms
	work=$(mktemp -d "$images/.oci.XXXXXX")
	mkdir -p "$work/blobs/sha256"
	ln "$rootfs_dir/layer.tar.gz" "$work/blobs/sha256/$root_digest"
	ln "$app_blob" "$work/blobs/sha256/$app_digest"
	cfg=$(printf '{"architecture":"amd64","os":"linux","config":{"User":"%s","Env":%s,"WorkingDir":"%s","ExposedPorts":{"8000/tcp":{}},"Labels":{"org.opencontainers.image.title":"summon-example","org.opencontainers.image.version":"%s"}},"rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s"]}}' \
		"$image_user" "$(json_strings "${image_env[@]}")" "$image_workdir" "${ref##*:}" "$root_diff" "$app_diff")
	cd=$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)
	cs=${#cfg}
	printf '%s' "$cfg" >"$work/blobs/sha256/$cd"
	man=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
		"$cd" "$cs" "$root_digest" "$root_size" "$app_digest" "$app_size")
	md=$(printf '%s' "$man" | sha256sum | cut -d' ' -f1)
	ms=${#man}
	printf '%s' "$man" >"$work/blobs/sha256/$md"
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
		"$md" "$ms" "$ref" "${ref##*:}" >"$work/index.json"
	printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci-layout"
	tar --numeric-owner --sort=name -C "$work" -cf "$out.tmp" oci-layout index.json blobs
	mv -f "$out.tmp" "$out"
	rm -rf "$work"
}

# sandbox ROOTFS APP CONFIG_DIR CMD...: CMD chrooted into ROOTFS with APP (src/, var/www/static/)
# over it, as the image's user, with a read-only root and a fresh /tmp, as a pod runs it
# (docs/app-image.md, "The security context"). Everything is mounted in a private mount
# namespace, so nothing outlives the command. The network is the host's.
sandbox() {
	local rootfs=$1 app=$2 config=$3
	shift 3
	local envs=() e
	for e in "${image_env[@]}"; do envs+=("$e"); done
	[[ -n "$config" ]] && envs+=("SUMMON_CONFIG_FILE=/etc/summon/summon-platform.yml")
	exec unshare --mount --propagation private -- /bin/sh -ec '
		r=$1 a=$2 c=$3; shift 3
		mount --bind "$r" "$r"
		mount --bind "$a/src" "$r/src"
		mount --bind "$a/var/www/static" "$r/var/www/static"
		mount -o remount,bind,ro "$r/src"
		mount -o remount,bind,ro "$r/var/www/static"
		mount -o remount,bind,ro "$r"
		mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
		mount -t tmpfs -o mode=1777 tmpfs "$r/var/lib/celerybeat"
		mount -t proc proc "$r/proc"
		# A /dev as a container runtime makes one: a few devices and a /dev/shm (Celery'"'"'s
		# prefork pool needs it for its semaphores).
		mount -t tmpfs -o mode=755 dev "$r/dev"
		for n in null zero full random urandom tty; do touch "$r/dev/$n"; mount --bind "/dev/$n" "$r/dev/$n"; done
		mkdir "$r/dev/shm" "$r/dev/pts"
		mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
		ln -s /proc/self/fd "$r/dev/fd"
		if [ -n "$c" ]; then mount --bind "$c" "$r/etc/summon"; mount -o remount,bind,ro "$r/etc/summon"; fi
		exec chroot --userspec='"$image_user"':0 "$r" /usr/bin/env -i "$@"
	' sandbox "$rootfs" "$app" "$config" "${envs[@]}" sh -c 'cd "$0" && exec "$@"' "$image_workdir" "$@"
}

# `run DIR VERSION CMD...`: CMD in a built image, as its pods run it; builds nothing. With
# SUMMON_CONFIG_DIR (a host folder holding summon-platform.yml), that folder is mounted where
# Summon mounts the config Secret. CMD replaces this script's process (same PID), so a TERM sent
# to it reaches CMD, as the kubelet's reaches a container's.
if [[ "${1:-}" == run ]]; then
	[[ $# -ge 4 ]] || { log "usage: $0 run DIR VERSION CMD... (SUMMON_CONFIG_DIR=<host folder> is mounted at /etc/summon)"; exit 2; }
	dir=$2 v=$3
	shift 3
	[[ -d "$dir/app/$v" && -d "$dir/rootfs/" ]] || { log "no version $v in $dir"; exit 2; }
	sandbox "$dir/rootfs" "$dir/app/$v" "${SUMMON_CONFIG_DIR:-}" "$@"
fi

# ---- keys ----
rootfs_key="$( (declare -f build_rootfs apt_retry; packages; echo "$suite ${SUMMON_DEBIAN_MIRROR:-}") | sha256sum | cut -c1-12)"
app_files() { (cd "$app_dir" && find . -type f ! -name '*.go' ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); }
key="$( (cat "${BASH_SOURCE[0]}"; echo "$rootfs_key"; app_files) | sha256sum | cut -c1-12)"
images="$cache/$key"
rootfs_dir="$cache/rootfs-$rootfs_key"
mkdir -p "$images" "$rootfs_dir"

# ---- the rootfs, once per rootfs key ----
exec 8>"$rootfs_dir/.lock"
flock 8
if [[ ! -f "$rootfs_dir/done" ]]; then
	[[ $EUID -eq 0 ]] || { log "building the rootfs needs root (debootstrap, chroot)"; exit 1; }
	need_debootstrap
	start=$SECONDS
	build_rootfs "$rootfs_dir/rootfs"
	log "rootfs built in $((SECONDS - start))s ($(du -sh "$rootfs_dir/rootfs" | cut -f1))"
	start=$SECONDS
	read -r d g s < <(pack_layer "$rootfs_dir/rootfs" "$rootfs_dir/layer.tar.gz")
	printf '%s %s %s\n' "$d" "$g" "$s" >"$rootfs_dir/layer"
	touch "$rootfs_dir/done"
	log "rootfs layer packed in $((SECONDS - start))s: $((s / 1024 / 1024)) MiB compressed"
fi
flock -u 8
read -r root_diff root_digest root_size <"$rootfs_dir/layer"

# ---- the app layers and archives, once per key ----
exec 9>"$images/.lock"
flock 9
if [[ ! -f "$images/versions" ]]; then
	[[ $EUID -eq 0 ]] || { log "building the images needs root (chroot, unshare)"; exit 1; }
	rm -rf "$images/app" "$images"/*.tar "$images"/.oci.* "$images"/.app-*
	ln -sfn "../rootfs-$rootfs_key/rootfs" "$images/rootfs"
	for v in "${versions[@]}"; do
		start=$SECONDS
		a="$images/app/$v"
		mkdir -p "$a/src" "$a/var/www/static"
		"$app_dir/assemble.sh" "$v" "$a/src" >&2
		# Bytecode and static files at build time, in the image's own Python and Django; the
		# read-write mounts are the app layer's folders only.
		unshare --mount --propagation private -- /bin/sh -ec '
			r=$1 a=$2
			mount --bind "$r" "$r"
			mount --bind "$a/src" "$r/src"
			mount --bind "$a/var/www/static" "$r/var/www/static"
			mount -o remount,bind,ro "$r"
			mount -t tmpfs tmpfs "$r/tmp"
			chroot "$r" /usr/bin/env -i PATH=/usr/bin:/bin LANG=C.UTF-8 HOME=/tmp \
				DJANGO_SETTINGS_MODULE=summon_platform.settings sh -ec "
				cd /src
				python3 -m compileall -q --invalidation-mode checked-hash .
				python3 manage.py collectstatic --noinput -v 0"
		' build "$rootfs_dir/rootfs" "$a" >&2
		read -r d g size < <(pack_layer "$a" "$images/.app-$v.tar.gz")
		write_archive "$images/summon-example-$v.tar" "$repo:$v" "$images/.app-$v.tar.gz" "$d" "$g" "$size"
		rm -f "$images/.app-$v.tar.gz"
		log "$repo:$v in $((SECONDS - start))s: $(du -h "$images/summon-example-$v.tar" | cut -f1)"
	done
	printf '%s\n' "${versions[@]}" >"$images/versions.tmp"
	mv "$images/versions.tmp" "$images/versions"
else
	log "images already in $images"
fi
flock -u 9

# ---- keys no run has used for a week ----
# Each change of the app makes a new key of a few hundred MB, each change of the packages a new
# rootfs: a key goes once neither it nor its stamp has changed for 7 days, and only when its lock
# is free (no run is building it).
touch "$images/.used" "$rootfs_dir/.used"
for old in "$cache"/*/; do
	old=${old%/}
	[[ "$old" == "$images" || "$old" == "$rootfs_dir" ]] && continue
	[[ -n "$(find "$old" -maxdepth 1 \( -path "$old" -o -name .used \) -mtime -7)" ]] && continue
	( exec 7>>"$old/.lock" && flock -n 7 && rm -rf "$old" && log "removed $(basename "$old"), unused for a week" ) || true
done

printf '%s\n' "$images"
