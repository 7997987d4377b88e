#!/usr/bin/env bash
# Builds tlog_oracle, the independent Go verifier of Palisade's transparency log
# (see README.md), with Debian's Go 1.19 and golang.org/x/mod 0.7.0, offline,
# in GOPATH mode. Installs golang-go and golang-golang-x-mod-dev with apt-get
# only if `go` or the x/mod source is missing.
#
#   tests/e2e/tlog_oracle/build.sh OUT          build the oracle binary to OUT
#   tests/e2e/tlog_oracle/build.sh --selftest   build it and run the self-test
#                                               (a local C2SP log, no Palisade)
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
gopath=/usr/share/gocode
xmod="$gopath/src/golang.org/x/mod/sumdb/tlog/tlog.go"

die() {
    echo "tlog_oracle/build.sh: FAILED: $*" >&2
    exit 1
}

[ $# -eq 1 ] && [ -n "$1" ] || die "usage: $0 OUT | --selftest"

if ! command -v go >/dev/null 2>&1 || [ ! -f "$xmod" ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo -n"
    echo "tlog_oracle/build.sh: installing golang-go golang-golang-x-mod-dev" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q golang-go golang-golang-x-mod-dev >&2 ||
        { $sudo apt-get update -q >&2 && $sudo apt-get install -y -q golang-go golang-golang-x-mod-dev >&2; } ||
        die "apt-get install golang-go golang-golang-x-mod-dev"
    command -v go >/dev/null 2>&1 || die "no 'go' on PATH after installing golang-go"
    [ -f "$xmod" ] || die "$xmod missing after installing golang-golang-x-mod-dev"
fi

export GO111MODULE=off GOPATH="$gopath" GOFLAGS= GOTOOLCHAIN=local
export GOCACHE="${TLOG_ORACLE_GOCACHE:-${TMPDIR:-/tmp}/tlog_oracle-gocache}"
mkdir -p "$GOCACHE" || die "cannot create GOCACHE $GOCACHE"

build() { # build OUT PKGDIR (GOPATH mode builds a directory outside GOPATH as ".")
    (cd "$2" && go build -o "$1" .) || die "go build -o $1 in $2 (GO111MODULE=off GOPATH=$GOPATH GOCACHE=$GOCACHE)"
}

if [ "$1" = "--selftest" ]; then
    tmp="$(mktemp -d)" || die "mktemp"
    trap 'rm -rf "$tmp"' EXIT
    build "$tmp/tlog_oracle" "$here"
    build "$tmp/selftest" "$here/selftest"
    "$tmp/selftest" -oracle "$tmp/tlog_oracle"
    rc=$?
    [ $rc -eq 0 ] || echo "tlog_oracle/build.sh: FAILED: self-test (exit $rc)" >&2
    exit $rc
fi

case "$1" in
/*) out="$1" ;;
*) out="$PWD/$1" ;;
esac
build "$out" "$here"
