#!/usr/bin/env bash
# Makes a Go build image without a registry: the installed Go toolchain,
# a module cache holding every module of go.mod, CA certificates and a
# world-writable /tmp, imported with `docker import`. Build jobwire's
# images with it where nothing can be pulled:
#
#   deploy/docker/local-go-image.sh            # makes jobwire-go:local
#   docker build --build-arg GO_IMAGE=jobwire-go:local \
#     --build-arg RUNTIME_IMAGE=scratch --target gateway -t jobwire-gateway .
#
# The image has no shell: the Dockerfile runs everything in exec form.
# Modules come from this machine's module cache when they are there (no
# network), else from GOPROXY.
set -euo pipefail
cd "$(dirname "$0")/../.."

tag=${1:-jobwire-go:local}
goroot=$(go env GOROOT)
cache=$(go env GOMODCACHE)
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

mkdir -p "$work/root/go/pkg/mod" "$work/root/tmp" "$work/root/etc/ssl/certs" "$work/root/usr/local"
chmod 1777 "$work/root/tmp"
GOMODCACHE="$work/root/go/pkg/mod" GOFLAGS=-modcacherw GOTOOLCHAIN=local \
	GOPROXY="file://$cache/cache/download,$(go env GOPROXY)" go mod download
cp /etc/ssl/certs/ca-certificates.crt "$work/root/etc/ssl/certs/"

# Go's own tree goes in as /usr/local/go, whatever its path here.
tar -C "$work/root" --exclude=usr -cf "$work/image.tar" .
tar -C "$(dirname "$goroot")" --transform "s,^$(basename "$goroot"),usr/local/go," \
	--exclude="$(basename "$goroot")/test" -rf "$work/image.tar" "$(basename "$goroot")"

docker import \
	--change 'ENV PATH=/usr/local/go/bin:/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'ENV GOPATH=/go' \
	--change 'ENV GOTOOLCHAIN=local' \
	--change 'ENV GOPROXY=off' \
	--change 'ENV GOFLAGS=-mod=readonly' \
	--change 'ENV HOME=/tmp' \
	--change 'WORKDIR /src' \
	"$work/image.tar" "$tag" >/dev/null
echo "$tag: $(go version | cut -d' ' -f3) with $(find "$work/root/go/pkg/mod/cache/download" -name '*.zip' | wc -l) modules"
