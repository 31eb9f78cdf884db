#!/usr/bin/env bash
# Builds the .deb and .rpm and checks them: contents, conffiles, maintainer scripts, the
# systemd unit (systemd-analyze verify), and a real installation of the .deb into a
# throwaway Debian root (debootstrap, chroot): the files land with the right owners and the
# service user exists. Needs root, cargo-deb, cargo-generate-rpm, dpkg-deb, rpm,
# systemd-analyze and debootstrap (.ci/run installs them).
#
# PROFILE=release packages an optimized binary (the shipped build); the default `dev` keeps
# this check fast.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE="${PROFILE:-dev}"
OUT="$(mktemp -d)"
ROOT="$OUT/root"
trap 'rm -rf "$OUT"' EXIT
fail() { echo "check-packages: $*" >&2; exit 1; }

# The binary: debug builds live in target/debug, which both packagers read via --profile.
cargo build --locked --profile "$PROFILE" --bin miroir
# (cargo-deb warns that dev profiles are not for releases: this is a check, not a release.)
cargo deb --locked --profile "$PROFILE" --no-build --no-strip --fast -o "$OUT/" >/dev/null 2>"$OUT/deb.log" \
    || { cat "$OUT/deb.log"; fail "cargo deb failed"; }
cargo generate-rpm --profile "$PROFILE" --payload-compress gzip -o "$OUT/" >/dev/null
DEB="$(ls "$OUT"/*.deb)"
RPM="$(ls "$OUT"/*.rpm)"
echo "built $(basename "$DEB") and $(basename "$RPM")"

# .deb contents and metadata.
contents="$(dpkg-deb -c "$DEB")"
for f in ./usr/bin/miroir ./etc/miroir/miroir.toml ./etc/default/miroir ./usr/lib/systemd/system/miroir.service; do
    grep -q " $f\$" <<<"$contents" || fail ".deb lacks $f"
done
info="$(dpkg-deb -I "$DEB")"
grep -q "Depends:.*adduser" <<<"$info" || fail ".deb does not depend on adduser"
mkdir -p "$OUT/control"
dpkg-deb -e "$DEB" "$OUT/control"
diff <(sort "$OUT/control/conffiles") <(printf '/etc/default/miroir\n/etc/miroir/miroir.toml\n') \
    || fail ".deb conffiles are not /etc/miroir/miroir.toml and /etc/default/miroir"
grep -q "adduser --system" "$OUT/control/postinst" || fail "postinst does not create the miroir user"
grep -q "deb-systemd-helper" "$OUT/control/postinst" || fail "postinst does not enable the unit"

# .rpm contents, config files and scripts.
rpm_files="$(rpm -qlp "$RPM" 2>/dev/null)"
for f in /usr/bin/miroir /etc/miroir/miroir.toml /etc/sysconfig/miroir /usr/lib/systemd/system/miroir.service; do
    grep -qx "$f" <<<"$rpm_files" || fail ".rpm lacks $f"
done
rpm_config="$(rpm -qcp "$RPM" 2>/dev/null)"
grep -qx /etc/miroir/miroir.toml <<<"$rpm_config" || fail ".rpm: miroir.toml is not a config file"
grep -qx /etc/sysconfig/miroir <<<"$rpm_config" || fail ".rpm: /etc/sysconfig/miroir is not a config file"
rpm_scripts="$(rpm -qp --scripts "$RPM" 2>/dev/null)"
grep -q "useradd --system" <<<"$rpm_scripts" || fail ".rpm does not create the miroir user"
grep -q "chown miroir:miroir /var/lib/miroir" <<<"$rpm_scripts" || fail ".rpm does not own /var/lib/miroir"
echo "contents, conffiles and scripts of both packages are as expected"

# The unit verifies against the installed files and the host's systemd units.
mkdir -p "$OUT/unit/usr/lib" "$OUT/unit/bin"
cp -r /usr/lib/systemd "$OUT/unit/usr/lib/"
dpkg-deb -x "$DEB" "$OUT/unit"
cp /bin/kill "$OUT/unit/bin/"
verify="$(systemd-analyze verify --root="$OUT/unit" /usr/lib/systemd/system/miroir.service 2>&1)" || fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify: $verify"
echo "systemd-analyze verify: clean"

# A real installation into a throwaway Debian root.
debootstrap --variant=minbase --include=adduser bookworm "$ROOT" http://deb.debian.org/debian >"$OUT/debootstrap.log" 2>&1 \
    || { tail -20 "$OUT/debootstrap.log"; fail "debootstrap failed"; }
cp "$DEB" "$ROOT/tmp/miroir.deb"
chroot "$ROOT" dpkg -i /tmp/miroir.deb >/dev/null
chroot "$ROOT" getent passwd miroir >/dev/null || fail "no miroir user after install"
owner() { chroot "$ROOT" stat -c '%U:%G %a' "$1"; }
[ "$(owner /var/lib/miroir)" = "miroir:miroir 750" ] || fail "/var/lib/miroir is $(owner /var/lib/miroir)"
[ "$(owner /etc/default/miroir)" = "root:miroir 640" ] || fail "/etc/default/miroir is $(owner /etc/default/miroir)"
[ "$(owner /etc/miroir/miroir.toml)" = "root:root 644" ] || fail "/etc/miroir/miroir.toml is $(owner /etc/miroir/miroir.toml)"
[ "$(owner /usr/bin/miroir)" = "root:root 755" ] || fail "/usr/bin/miroir is $(owner /usr/bin/miroir)"
chroot "$ROOT" /usr/bin/miroir check-config /etc/miroir/miroir.toml >/dev/null || fail "the shipped configuration is invalid"
# An edited conffile survives an upgrade (reinstall).
echo "# edited by the operator" >>"$ROOT/etc/miroir/miroir.toml"
chroot "$ROOT" dpkg -i --force-confold /tmp/miroir.deb >/dev/null
grep -q "edited by the operator" "$ROOT/etc/miroir/miroir.toml" || fail "an upgrade overwrote /etc/miroir/miroir.toml"
# Purge removes the state and the user.
chroot "$ROOT" dpkg --purge miroir >/dev/null 2>&1
[ ! -e "$ROOT/var/lib/miroir" ] || fail "purge left /var/lib/miroir"
echo "installed in a throwaway root: owners, user, conffile upgrade and purge are right"
