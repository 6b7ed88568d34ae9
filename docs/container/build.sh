#!/usr/bin/env bash
# build.sh builds lancelot's container image (docs/operations.md,
# "Containers"):
#
#   docs/container/build.sh [TAG]
#
# A static binary (CGO_ENABLED=0) of this tree, then a FROM scratch image
# around it (Containerfile): nothing is pulled, no registry is needed. TAG
# defaults to lancelot:VERSION, VERSION being what the binary says. Prints
# the tag and the image's size.
#
# Environment: DOCKER (the docker client; default: docker), BINARY (put
# this static binary in the image instead of building one, e.g. another
# release, to compare), SOURCE_DATE_EPOCH (the created label; default: the
# last commit's time).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
docker=${DOCKER:-docker}

die() {
	echo "build.sh: $*" >&2
	exit 1
}

[ $# -le 1 ] || die "usage: build.sh [TAG]"
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

# -buildvcs=auto: the machine's GOFLAGS may say false, and the revision
# label and `lancelot version` should name the commit. No cgo: scratch has
# no libc.
if [ -n "${BINARY:-}" ]; then
	cp "$BINARY" "$ctx/lancelot"
else
	(cd "$root" && CGO_ENABLED=0 go build -buildvcs=auto -trimpath -ldflags='-s -w' -o "$ctx/lancelot" ./cmd/lancelot)
fi
chmod 0555 "$ctx/lancelot" # root's, read-only: the image's user cannot replace it
cp "$here/Containerfile" "$ctx/Containerfile"

info=$("$ctx/lancelot" version --json)
field() { sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p" <<<"$info"; }
version=$(field version)
revision=$(field revision)
if [ -z "$revision" ] || [ "$revision" = unknown ]; then
	# Go stamps no revision in some checkouts (a git worktree): ask git.
	revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
fi
[ -n "$version" ] || die "the binary cannot tell its version"
tag=${1:-lancelot:$version}
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

"$docker" build --quiet --force-rm -f "$ctx/Containerfile" -t "$tag" \
	--build-arg VERSION="$version" --build-arg REVISION="$revision" --build-arg CREATED="$created" \
	"$ctx" >/dev/null 2>"$ctx/build.log" || { cat "$ctx/build.log" >&2; die "docker build failed"; }
size=$("$docker" image inspect --format '{{.Size}}' "$tag")
echo "$tag $size bytes"
