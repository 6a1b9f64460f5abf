#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager v1.20.2 from Debian bookworm's own
# `kubernetes` source package (it vendors its Go dependencies), with Debian's Go.
# See docs/rehearsal-cluster.md. Output: $1/kube-apiserver, $1/kube-controller-manager.
# Idempotent: exits at once when both binaries are already in the output directory.
set -euo pipefail

OUT="${1:?usage: build-kube-binaries.sh OUTPUT_DIR}"
PKG_VERSION="${KUBE_DEB_VERSION:-1.20.5+really1.20.2-1.1+deb12u1}"
if [[ -x "$OUT/kube-apiserver" && -x "$OUT/kube-controller-manager" ]]; then
  echo "kube binaries already built in $OUT"
  exit 0
fi
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/flux-handover-kube-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

export DEBIAN_FRONTEND=noninteractive
# A private apt configuration for the deb-src line, so the system's sources are left alone.
mkdir -p "$WORK/apt/lists/partial"
echo "deb-src http://deb.debian.org/debian bookworm main" > "$WORK/apt/sources.list"
APT_OPTS=(-o "Dir::Etc::sourcelist=$WORK/apt/sources.list" -o "Dir::Etc::sourceparts=-"
          -o "Dir::State::Lists=$WORK/apt/lists" -o "APT::Sandbox::User=root")
need=()
for p in golang-go dpkg-dev rsync golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev make; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
apt-get "${APT_OPTS[@]}" update -qq
cd "$WORK"
apt-get "${APT_OPTS[@]}" source --download-only "kubernetes=$PKG_VERSION" >/dev/null
dpkg-source -x ./kubernetes_*.dsc src >/dev/null
cd src
# REQUIRED: vendored reflect2 v1.0.1 crashes under Go 1.19 on the first stored custom resource.
for mod in github.com/modern-go/reflect2 github.com/json-iterator/go; do
  rm -rf "vendor/$mod"
  mkdir -p "vendor/$mod"
  cp -r "/usr/share/gocode/src/$mod/." "vendor/$mod/"
  rm -f "vendor/$mod/go.mod" "vendor/$mod/go.sum"
  find "vendor/$mod" -name '*_test.go' -delete
done
mkdir -p .go/src/k8s.io
ln -s ../../.. .go/src/k8s.io/kubernetes
GOPATH="$PWD/.go" CGO_ENABLED=0 \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$WORK/build.log" 2>&1 || {
    tail -50 "$WORK/build.log"; exit 1; }
bin="$(find _output -type f -name kube-apiserver | head -1)"
cp "$bin" "$OUT/kube-apiserver.tmp" && mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
bin="$(find _output -type f -name kube-controller-manager | head -1)"
cp "$bin" "$OUT/kube-controller-manager.tmp" && mv "$OUT/kube-controller-manager.tmp" "$OUT/kube-controller-manager"
echo "built kube binaries into $OUT"
