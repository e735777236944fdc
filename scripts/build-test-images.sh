#!/usr/bin/env bash
# Build the local test images (no registry needed):
#   drover-test/app:1      FROM-scratch image with the static `app` binary (crates/testapp),
#                          ENTRYPOINT ["/app"], CMD ["serve"]
#   drover-test/busybox:1  FROM-scratch image with /bin/busybox (busybox-static) and applet links,
#                          CMD ["sh"]
# Idempotent: an image is re-imported only when its rootfs changed (content hash kept in a label).
# Usage: scripts/build-test-images.sh        (uses DOCKER_HOST if set, else the local socket)
set -euo pipefail

cd "$(dirname "$0")/.."
say() { echo "build-test-images: $*" >&2; }

TARGET=x86_64-unknown-linux-gnu
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
APP_IMAGE=drover-test/app:1
BUSYBOX_IMAGE=drover-test/busybox:1
BUSYBOX_APPLETS=(sh sleep echo cat ls env true false wget nc httpd)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# import_rootfs IMAGE ROOTFS [--change ...]: import ROOTFS as IMAGE unless the same content is there.
import_rootfs() {
    local image=$1 rootfs=$2
    shift 2
    local tarball="$work/$(echo "$image" | tr '/:' '__').tar"
    # Deterministic tarball: fixed order, owner and mtime, so the hash only follows the content.
    tar -C "$rootfs" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$tarball" .
    local want have
    want=$(printf '%s\n' "$*" | cat - "$tarball" | sha256sum | cut -d' ' -f1)
    have=$(docker image inspect --format '{{ index .Config.Labels "drover-test.content" }}' "$image" 2>/dev/null || true)
    if [[ "$have" == "$want" ]]; then
        say "$image is up to date"
        return
    fi
    say "importing $image"
    docker import "$@" --change "LABEL drover-test.content=$want" "$tarball" "$image" >/dev/null
    say "$image: $(docker image inspect --format '{{.Id}} {{.Size}} bytes' "$image")"
}

# --- drover-test/app:1 ---------------------------------------------------------------------
say "building testapp (static, release, target dir $TARGET_DIR)"
RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR="$TARGET_DIR" \
    cargo build --release -p testapp --target "$TARGET"
bin="$TARGET_DIR/$TARGET/release/app"
if command -v file >/dev/null && ! file -L "$bin" | grep -Eq 'static(-pie)? linked|statically linked'; then
    say "error: $bin is not statically linked: $(file -L "$bin")"
    exit 1
fi

app_root="$work/app-root"
mkdir -p "$app_root/tmp"
chmod 1777 "$app_root/tmp"
install -m 0755 "$bin" "$app_root/app"
import_rootfs "$APP_IMAGE" "$app_root" \
    --change 'ENTRYPOINT ["/app"]' --change 'CMD ["serve"]'

# --- drover-test/busybox:1 -----------------------------------------------------------------
if ! dpkg -s busybox-static >/dev/null 2>&1; then
    say "installing busybox-static (apt-get; needs root)"
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y busybox-static >&2
fi
bb_root="$work/busybox-root"
mkdir -p "$bb_root/bin" "$bb_root/tmp"
chmod 1777 "$bb_root/tmp"
install -m 0755 /bin/busybox "$bb_root/bin/busybox"
for applet in "${BUSYBOX_APPLETS[@]}"; do
    ln -sf busybox "$bb_root/bin/$applet"
done
import_rootfs "$BUSYBOX_IMAGE" "$bb_root" \
    --change 'ENV PATH=/bin' --change 'CMD ["sh"]'

say "done: $APP_IMAGE $BUSYBOX_IMAGE"
