#!/usr/bin/env bash
# Build the gpuforge execution environment image (execution-environment.yml) from local
# parts only: the base image from the gpuforge Debian 12 sandbox image, the collection
# tarball and the toolkit wheel from this checkout; then `ansible-builder create` and
# `podman build --pull=never` of its context (ansible-builder's own `build` would try the
# registry). Cached by content: the image carries the hash of everything it is built
# from, and a second run with nothing changed returns at once.
# Prints the image name; its size and the build time go to stderr and .cache/ee/build.json.
# Exit codes: 0 built or current, 5 a missing tool, other: the failing step's.
set -euo pipefail
# One function, called on the last line: bash reads all of it before running any of it,
# so an edit to this file during a build cannot derail the build.
main() {
cd "$(dirname "$0")/.."
bin=$PWD/${GPUFORGE_VENV:-.venv}/bin
image=${GPUFORGE_EE_IMAGE:-localhost/gpuforge-ee:latest}
base=localhost/gpuforge-ee-base:debian12
sandbox=localhost/gpuforge-sandbox:debian12
work=.cache/ee
label=io.gpuforge.ee.content

for tool in podman git "$bin/ansible-builder" "$bin/ansible-galaxy" "$bin/pip"; do
  command -v "$tool" >/dev/null || {
    echo "Error: $tool is missing (run scripts/setup.sh)" >&2; exit 5; }
done

# podman with the settings gpuforge runs it with (lowered rlimits, runc: see
# toolkit/sandbox/podman.py), so the image's containers start on this machine too.
CONTAINERS_CONF=${CONTAINERS_CONF:-$("$bin/python" -c \
  'from toolkit.sandbox.podman import containers_conf; print(containers_conf())')}
export CONTAINERS_CONF

# The sandbox image is the base's base: make sure it is current (quick when it is).
"$bin/gpuforge" sandbox image --distro debian12 >/dev/null 2>&1

# Everything the image is made from: the definition, its requirement files, the
# collection and toolkit sources (tracked and new files, as they are now), the base image.
sources=(execution-environment.yml ee meta galaxy.yml pyproject.toml setup.py MANIFEST.in
         README.md CHANGELOG.md LICENSE ansible.cfg toolkit roles playbooks plugins seeds)
# Files git knows of (tracked or new, not ignored) that exist now: a file deleted in the
# work tree is not part of the image.
present() {
  git ls-files -z -co --exclude-standard -- "$@" | while IFS= read -r -d '' f; do
    if [ -f "$f" ]; then printf '%s\0' "$f"; fi
  done
}
content=$( { present "${sources[@]}" | sort -z | xargs -0 sha256sum
           podman image inspect --format '{{.Id}}' "$sandbox"
  cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true; } | sha256sum | cut -c1-16)
current=$(podman image inspect --format "{{ index .Config.Labels \"$label\" }}" "$image" \
            2>/dev/null || true)
if [ "$current" = "$content" ]; then
  echo "ee-build: $image is current (content $content)" >&2
  echo "$image"
  exit 0
fi

start=$(date +%s)
rm -rf "$work"
mkdir -p "$work/src" "$work/dist"
# A clean copy of the sources, as a release would build them (no .venv, no caches).
present | tar --null -T - -cf - \
  | tar -C "$work/src" -xf -

echo "ee-build: base image $base" >&2
# The controller's locally added CAs (a TLS-inspecting proxy's, a site mirror's) are
# trusted in the image too, as base_ca_certificates does on managed hosts: public
# certificates, not secrets.
mkdir -p "$work/base/ca"
cp ee/base.Containerfile ee/gpuforge-ee-pkg ee/requirements.txt "$work/base/"
find /usr/local/share/ca-certificates -maxdepth 1 -name '*.crt' -exec cp {} "$work/base/ca/" \;
podman build -q --pull=never -f "$work/base/base.Containerfile" -t "$base" "$work/base" >/dev/null
echo "ee-build: collection tarball and toolkit wheel" >&2
(cd "$work/src" && "$bin/ansible-galaxy" collection build -f --output-path ../dist >/dev/null)
mv "$work"/dist/gpuforge-infra-*.tar.gz "$work/dist/gpuforge-infra.tar.gz"
"$bin/pip" wheel -q --no-deps "$work/src" -w "$work/dist" >/dev/null
echo "ee-build: ansible-builder create, podman build" >&2
"$bin/ansible-builder" create -f execution-environment.yml -c "$work/context" \
  --output-filename Containerfile -v 1 >/dev/null
podman build --pull=never --label "$label=$content" -t "$image" \
  -f "$work/context/Containerfile" "$work/context" >"$work/podman-build.log" 2>&1 || {
  rc=$?; tail -n 30 "$work/podman-build.log" >&2
  echo "Error: podman build of $image failed (full log: $work/podman-build.log)" >&2
  exit "$rc"
}
seconds=$(( $(date +%s) - start ))
size=$(podman image inspect --format '{{.Size}}' "$image")
printf '{"image": "%s", "content": "%s", "build_seconds": %d, "size_bytes": %d}\n' \
  "$image" "$content" "$seconds" "$size" >"$work/build.json"
echo "ee-build: built $image in ${seconds}s, $((size / 1000000)) MB" >&2
rm -rf "$work/src"
echo "$image"
}

main "$@"
