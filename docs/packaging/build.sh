#!/usr/bin/env bash
# build.sh builds lancelot's Debian package with nfpm (docs/packaging/README.md).
#
#   docs/packaging/build.sh OUTDIR [BINARY]
#
# Packages BINARY, or else the working tree's own build, into
# OUTDIR/lancelot_VERSION_ARCH.deb and prints that path. VERSION is what
# `BINARY version --json` says; set VERSION= for a binary that cannot tell
# (release 0.2.0) or to label a build (VERSION=0.3.0~rc1). The units, the
# conffile, the man pages, the completions and the changelog are generated
# from this tree (configs/, the CLI, CHANGELOG.md), whatever BINARY is.
#
# Environment: VERSION, MAINTAINER (default: the project's), and
# SOURCE_DATE_EPOCH (file times; default: the last commit's).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
maintainer=${MAINTAINER:-Lancelot Maintainers <lancelot-maintainers@camelot.dev>}

die() {
	echo "build.sh: $*" >&2
	exit 1
}

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: build.sh OUTDIR [BINARY]"
mkdir -p "$1"
out=$(cd "$1" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

# build_tree builds the tree's binary: the one packaged when no BINARY is
# given, and always the one whose CLI the man pages and completions describe.
# -buildvcs=auto: the machine's GOFLAGS may say false, and `lancelot
# version` should name the commit. No cgo, so it runs on any glibc; PIE
# (address space randomisation) and stripped, as Debian builds Go binaries.
build_tree() {
	(cd "$root" && CGO_ENABLED=0 go build -buildvcs=auto -buildmode=pie -trimpath -ldflags='-s -w' \
		-o "$stage/tree/lancelot" ./cmd/lancelot)
}

# package_version prints the version the package gets.
package_version() {
	local v=${VERSION:-}
	if [ -z "$v" ]; then
		v=$("$1" version --json 2>/dev/null | sed -n 's/.*"version": *"\([^"]*\)".*/\1/p') || true
		[ -n "$v" ] || die "$1 cannot tell its version (no \`version --json\`: a release before 0.3.0?); set VERSION="
	fi
	[[ $v =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "version $v: want a Debian upstream version such as 0.3.0 or 0.3.0~rc1"
	echo "$v"
}

# deb_arch maps the binary's GOARCH (from its build info) to Debian's name.
deb_arch() {
	local goarch
	goarch=$(go version -m "$1" | awk '$1 == "build" && $2 ~ /^GOARCH=/ { sub(/GOARCH=/, "", $2); print $2 }')
	case ${goarch:-$(go env GOARCH)} in
	amd64 | arm64 | riscv64 | s390x | mips64le) echo "${goarch}" ;;
	386) echo i386 ;;
	arm) echo armhf ;;
	ppc64le) echo ppc64el ;;
	*) die "$1: GOARCH $goarch has no Debian architecture here" ;;
	esac
}

# gen_units writes the units from configs/, pointing at /usr/bin/lancelot.
# A binary without `lancelot reload` (0.2.0) reloads by a bare HUP instead.
gen_units() {
	local bin=$1 reload=cat note="# Generated from configs/%s by docs/packaging/build.sh for the lancelot\n# package; change it locally with \`systemctl edit %s\`.\n"
	if ! "$bin" reload --help >/dev/null 2>&1; then
		reload='sed s|^ExecReload=.*|ExecReload=/bin/kill\x20-HUP\x20$MAINPID|'
	fi
	for u in lancelot.service lancelot.socket; do
		{
			# shellcheck disable=SC2059
			printf "$note" "$u" "$u"
			sed -e 's|/usr/local/bin/lancelot|/usr/bin/lancelot|g' -e 's| Install with docs/operations.md.||' \
				"$root/configs/$u" | $reload
		} >"$stage/$u"
		! grep -n /usr/local "$stage/$u" || die "configs/$u: a path other than /usr/local/bin/lancelot under /usr/local"
	done
	grep -q '^ExecStart=/usr/bin/lancelot serve' "$stage/lancelot.service" ||
		die "configs/lancelot.service: no ExecStart=/usr/local/bin/lancelot serve ..."
}

# gen_conffile writes /etc/lancelot/lancelot.yaml: configs/lancelot.yaml
# with every setting commented out, so the defaults apply and every release
# that may read it (0.2.0 refuses keys it does not know) accepts it.
gen_conffile() {
	{
		echo "# Installed by the lancelot package: every setting is commented out, so"
		echo "# lancelot's defaults apply. Uncomment and edit a setting to change it, then"
		echo "# \`lancelot check --config /etc/lancelot/lancelot.yaml\` and \`systemctl reload lancelot\`."
		echo "#"
		sed -E '/^[[:space:]]*(#|$)/!s/^/# /' "$root/configs/lancelot.yaml"
	} >"$stage/lancelot.yaml"
}

# gen_docs writes the man pages and the completions from the tree's CLI:
# `lancelot gendocs` for the man pages and fish, urfave/cli's own scripts
# (of the version go.mod pins) for bash and zsh.
gen_docs() {
	local tree=$stage/tree/lancelot cli
	"$tree" gendocs "$stage/docs"
	mkdir -p "$stage/man1"
	for page in "$stage"/docs/man1/*.1; do
		gzip -9n <"$page" >"$stage/man1/${page##*/}.gz"
	done
	mv "$stage/docs/lancelot.fish" "$stage/lancelot.fish"
	cli=$(cd "$root" && go list -m -f '{{.Dir}}' github.com/urfave/cli/v2)
	# bash-completion sources the file: no #! line.
	sed -e '1{/^#!/d}' -e 's|^: ${PROG:=.*|PROG=lancelot|' "$cli/autocomplete/bash_autocomplete" >"$stage/bash-completion"
	# An autoloaded zsh function: the file's body runs on every completion.
	sed -e 's|^#compdef $PROG|#compdef lancelot|' -e 's|^compdef _cli_zsh_autocomplete $PROG|_cli_zsh_autocomplete "$@"|' \
		"$cli/autocomplete/zsh_autocomplete" >"$stage/zsh-completion"
	grep -q '^PROG=lancelot' "$stage/bash-completion" && grep -q '^#compdef lancelot' "$stage/zsh-completion" ||
		die "urfave/cli's autocomplete scripts changed shape; update gen_docs"
}

# gen_copyright writes the machine-readable copyright file: lancelot is
# under the Apache License 2.0 (LICENSE at the top of the tree), whose full
# text Debian keeps in /usr/share/common-licenses.
gen_copyright() {
	local year
	year=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)
	cat >"$stage/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: lancelot
Upstream-Contact: $maintainer
Source: https://github.com/camelot/lancelot

Files: *
Copyright: $year the lancelot developers
License: Apache-2.0
Comment: The binary has these Go modules compiled in, each under its own
 licence (see each module's source):
$(go version -m "$1" | awk '$1 == "dep" { print " " $2 " " $3 }')

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License");
 you may not use this file except in compliance with the License.
 You may obtain a copy of the License at
 .
 http://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an "AS IS" BASIS,
 WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 See the License for the specific language governing permissions and
 limitations under the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0
 can be found in "/usr/share/common-licenses/Apache-2.0".
EOF
	grep -q 'Apache License' "$root/LICENSE" || die "LICENSE: not the Apache License 2.0 the copyright file names"
}

# gen_userdocs stages the documentation for /usr/share/doc/lancelot:
# README.md, CHANGELOG.md and docs/*.md, compressed as Debian policy asks
# (12.3), docs/ kept as a directory so that the README's links still lead
# somewhere.
gen_userdocs() {
	mkdir -p "$stage/doc/docs"
	for f in README.md CHANGELOG.md; do
		gzip -9n <"$root/$f" >"$stage/doc/$f.gz"
	done
	for f in "$root"/docs/*.md; do
		gzip -9n <"$f" >"$stage/doc/docs/${f##*/}.gz"
	done
}

# gen_changelog writes the Debian changelog (native package: changelog.gz)
# from CHANGELOG.md: one entry per "## VERSION ..." heading up to the package's
# version, each paragraph or list item a "*" line. A version CHANGELOG.md
# does not list gets an entry of its own on top.
gen_changelog() {
	local version=$1 v date hash top=""
	: >"$stage/changelog"
	if ! grep -Eq "^## $(printf '%s' "$version" | sed 's/[.+~]/\\&/g')( |$)" "$root/CHANGELOG.md"; then
		top="  * A build of revision $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown), not a release in CHANGELOG.md."
		changelog_entry "$version" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")" <<<"$top"
	fi
	while read -r v hash; do
		dpkg --compare-versions "$v" le "$version" || continue
		date=""
		if [ -n "$hash" ]; then
			date=$(git -C "$root" log -1 --format=%aD "$hash" 2>/dev/null || true)
		fi
		[ -n "$date" ] || date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
		changelog_section "$v" | changelog_entry "$v" "$date"
	done < <(sed -n -E 's/^## ([^ ]+)( .*commit ([0-9a-f]+))?.*/\1 \3/p' "$root/CHANGELOG.md")
	gzip -9n <"$stage/changelog" >"$stage/changelog.gz"
}

# changelog_section prints the items of VERSION's section of CHANGELOG.md,
# one "  * text" line each, wrapped.
changelog_section() {
	awk -v want="$1" '
		/^## / { on = ($2 == want); next }
		!on { next }
		/^[[:space:]]*$/ { flush(); next }
		/^- / { flush(); sub(/^- /, "") }
		{ sub(/^[[:space:]]+/, ""); item = item (item == "" ? "" : " ") $0 }
		END { flush() }
		function flush() {
			if (item == "") return
			n = split(item, w, " "); line = "  *"
			for (i = 1; i <= n; i++) {
				if (length(line) + 1 + length(w[i]) > 78 && line != "  *" && line != "   ") {
					print line
					line = "   "
				}
				line = line " " w[i]
			}
			print line; item = ""
		}
	' "$root/CHANGELOG.md"
}

# changelog_entry wraps the items on stdin in an entry for VERSION and DATE.
changelog_entry() {
	{
		echo "lancelot ($1) unstable; urgency=medium"
		echo
		cat
		echo
		echo " -- $maintainer  $2"
		echo
	} >>"$stage/changelog"
}

# gen_scripts fills in the maintainer scripts' values from the unit.
gen_scripts() {
	local args pidfile dirs="/etc/lancelot /run/lancelot /var/lib/lancelot" kind name
	args=$(sed -n 's|^ExecStart=/usr/bin/lancelot serve ||p' "$stage/lancelot.service")
	pidfile=$(printf '%s\n' "$args" | sed -n -E 's/.*--pid-file[= ]([^ ]+).*/\1/p')
	[ -n "$pidfile" ] || die "configs/lancelot.service: ExecStart= has no --pid-file; the postinst needs it"
	# Directories systemd makes for the unit, including DynamicUser's private/.
	while IFS='=' read -r kind name; do
		for n in $name; do
			[[ $n =~ ^[a-z0-9][a-z0-9._-]*$ ]] || die "lancelot.service: $kind=$n: not a plain directory name"
			case $kind in
			RuntimeDirectory) dirs+=" /run/$n" ;;
			ConfigurationDirectory) dirs+=" /etc/$n" ;;
			StateDirectory) dirs+=" /var/lib/$n /var/lib/private/$n" ;;
			CacheDirectory) dirs+=" /var/cache/$n /var/cache/private/$n" ;;
			LogsDirectory) dirs+=" /var/log/$n /var/log/private/$n" ;;
			esac
		done
	done < <(grep -E '^(Runtime|Configuration|State|Cache|Logs)Directory=' "$stage/lancelot.service")
	dirs=$(tr ' ' '\n' <<<"$dirs" | awk '!seen[$0]++' | tr '\n' ' ' | sed 's/ $//')
	for s in postinst prerm postrm; do
		sed -e "s|@CHECK_ARGS@|$args|" -e "s|@PIDFILE@|$pidfile|" -e "s|@PURGE_DIRS@|$dirs|" \
			"$here/scripts/$s" >"$stage/$s"
		chmod 0755 "$stage/$s"
	done
}

build_tree
bin=${2:-$stage/tree/lancelot}
[ -x "$bin" ] || die "$bin: not an executable"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
version=$(package_version "$bin")
arch=$(deb_arch "$bin")
cp "$bin" "$stage/lancelot"
depends=""
# A dynamic or PIE binary needs the C library's dynamic loader (libc6).
if readelf -l "$bin" | grep -q 'program interpreter'; then
	depends=libc6
fi
gen_units "$bin"
gen_conffile
gen_docs
gen_copyright "$bin"
gen_userdocs
gen_changelog "$version"
gen_scripts
sed -e "s|@STAGE@|$stage|g" -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" \
	-e "s|@MAINTAINER@|$maintainer|" -e "s|@DEPENDS@|$depends|" "$here/nfpm.yaml" >"$stage/nfpm.yaml"
deb=$out/lancelot_${version}_${arch}.deb
go -C "$here" tool nfpm package --config "$stage/nfpm.yaml" --packager deb --target "$deb" >&2
echo "$deb"
