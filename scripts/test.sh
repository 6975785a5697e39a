#!/usr/bin/env bash
# Runs all of Portcullis's checks and tests on a fresh Debian machine:
# installs the Debian peers the interoperability tests talk to (you must be
# root, or have them installed already), downloads the pinned Go modules,
# then gofmt, go vet, staticcheck and `go test -race ./...`.
#
# With CI=true a missing peer or corpus fails its test instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH=/usr/local/go/bin:$PATH
fi

# Debian packages the tests need (one per line in scripts/deps.txt).
mapfile -t pkgs < <(grep -v '^[[:space:]]*\(#\|$\)' scripts/deps.txt || true)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "== installing Debian packages: ${missing[*]}"
	if [ "$(id -u)" -eq 0 ]; then
		export DEBIAN_FRONTEND=noninteractive
		# postfix would otherwise configure the machine's own mail system;
		# its tests run private instances and need none.
		if command -v debconf-set-selections >/dev/null 2>&1; then
			echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
		fi
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	else
		echo "not root: cannot install ${missing[*]}; the tests that need them will skip (or fail with CI=true)" >&2
	fi
fi

echo "== go mod download"
go mod download

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "not gofmt-formatted:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
go tool staticcheck ./...

echo "== go test -race"
go test -race -count=1 -timeout 45m ./...
