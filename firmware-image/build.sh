#!/usr/bin/env bash
# build.sh builds the flashable Raspberry Pi image of tutti (64-bit Pi 3, 4,
# Zero 2 W; Debian bookworm) into out/:
#   tutti-<version>-arm64.img.zst   the image, zstd-compressed
#   tutti-<version>-arm64.img.zst.sha256
#   tutti-<version>-arm64.bmap      block map of the raw image, for bmaptool copy
# Run it as root (mmdebstrap --mode=root). It uses no loop device and never
# writes to a device; each run starts from scratch except for the .deb cache
# in cache/debs, which makes the next build skip the downloads.
#
# Stages: prepare (host tools, binfmt, cross-compiled tutti) -> rootfs
# (mmdebstrap, with this script's hooks) -> write (partitions, image, bmap,
# compression). Layout (see the image contract):
#   p1 FAT32 RASPIFIRM at 4 MiB, 256 MiB: firmware, kernel, initrd, config.txt,
#      cmdline.txt, tutti.toml
#   p2 ext4 RASPIROOT: the root filesystem, always mounted read-only
#   p3 ext4 TUTTIDATA, 64 MiB, last: /var/lib/tutti, grown on first boot
#
# Environment: MIRROR (Debian mirror, default http://deb.debian.org/debian),
# SECURITY_MIRROR (default http://deb.debian.org/debian-security).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
self="$here/$(basename "$0")"
repo=$(dirname "$here")
out="$here/out"
# The go tool skips directories starting with "_": the root file system
# built here stays out of ./... (go test, go vet).
work="$out/_work"
debs="$here/cache/debs"

MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}

# What the image runs, on top of mmdebstrap's minbase.
packages=(
	systemd systemd-sysv udev dbus kmod
	systemd-timesyncd systemd-resolved libnss-resolve libnss-myhostname
	iproute2 ca-certificates procps
	linux-image-arm64 initramfs-tools zstd raspi-firmware firmware-brcm80211
	libasound2 alsa-utils
	wpasupplicant openssh-server
	fdisk e2fsprogs
)

firm_mib=256 # p1
data_mib=64  # p3, grown on first boot to fill the card

log() { printf '== %s\n' "$*" >&2; }

# host_tools installs what the build needs on a fresh Debian machine (CI) and
# turns on running arm64 programs through qemu-user.
host_tools() {
	local need=()
	command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
	[ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || [ -e /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
	command -v update-binfmts >/dev/null || need+=(binfmt-support)
	command -v arch-test >/dev/null || need+=(arch-test)
	command -v mkfs.vfat >/dev/null || need+=(dosfstools)
	command -v mcopy >/dev/null || need+=(mtools)
	command -v sfdisk >/dev/null || need+=(fdisk)
	command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
	command -v zstd >/dev/null || need+=(zstd)
	command -v bmaptool >/dev/null || need+=(bmap-tools)
	command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
	# The cross compiler's C library headers are only recommended by
	# gcc-aarch64-linux-gnu, which --no-install-recommends leaves out.
	[ -e /usr/aarch64-linux-gnu/include/stdio.h ] || need+=(libc6-dev-arm64-cross)
	[ -e /usr/lib/aarch64-linux-gnu/pkgconfig/alsa.pc ] || need+=(libasound2-dev:arm64)
	if [ ${#need[@]} -gt 0 ]; then
		log "installing host packages: ${need[*]}"
		dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${need[@]}"
	fi
	mountpoint -q /proc/sys/fs/binfmt_misc || mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
	update-binfmts --enable qemu-aarch64 2>/dev/null || true
	arch-test arm64 >/dev/null || { echo "build.sh: this machine cannot run arm64 programs (qemu-user-static, binfmt_misc)" >&2; exit 1; }
}

# build_tutti cross-compiles the tutti binary (cgo: ALSA and SQLite).
build_tutti() {
	log "cross-compiling tutti for linux/arm64"
	(cd "$repo" && CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc \
		PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig \
		"${GO:-go}" build -tags sqlite_fts5 -trimpath -ldflags='-s -w' -o "$work/tutti" ./cmd/tutti)
}

# rootfs builds the root filesystem in $work/root with mmdebstrap; the hooks
# below run inside it. The .deb cache goes in before the downloads and comes
# out (only what this build used) before mmdebstrap cleans up.
rootfs() {
	log "building the root filesystem (mmdebstrap)"
	mkdir -p "$debs"
	rm -rf "$debs.new"
	local include
	include=$(IFS=,; echo "${packages[*]}")
	mmdebstrap --mode=root --arch=arm64 --variant=minbase \
		--components=main,non-free-firmware \
		--aptopt='APT::Install-Recommends "false"' \
		--aptopt='Acquire::Languages "none"' \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-include=/usr/share/locale/locale.alias' \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		--include="$include" \
		--skip=essential/unlink \
		--setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
		--setup-hook="sync-in $debs /var/cache/apt/archives/" \
		--essential-hook="\"$self\" hook-essential \"\$1\"" \
		--customize-hook="sync-out /var/cache/apt/archives $debs.new" \
		--customize-hook="\"$self\" hook-customize \"\$1\"" \
		bookworm "$work/root" \
		"deb $MIRROR bookworm main non-free-firmware" \
		"deb $MIRROR bookworm-updates main non-free-firmware" \
		"deb $SECURITY_MIRROR bookworm-security main non-free-firmware"
	# Keep exactly the .debs this build used: the cache does not grow with
	# every security update.
	find "$debs.new" -maxdepth 1 ! -name '*.deb' -type f -delete
	rm -rf "$debs.old"
	mv "$debs" "$debs.old" && mv "$debs.new" "$debs" && rm -rf "$debs.old"
}

# hook_essential runs after the essential packages, before the others:
# mkinitramfs under emulation is the slowest step, so update-initramfs is a
# no-op during the install and runs once at the end; ischroot misdetects
# mmdebstrap's chroot, which makes raspi-firmware refuse to fill /boot/firmware.
hook_essential() {
	local root=$1
	chroot "$root" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs
	printf '#!/bin/sh\n# build.sh: runs once at the end of the build\nexit 0\n' >"$root/usr/sbin/update-initramfs"
	chmod 755 "$root/usr/sbin/update-initramfs"
	chroot "$root" dpkg-divert --quiet --local --rename --add /usr/bin/ischroot
	printf '#!/bin/sh\n# build.sh: we are in a chroot\nexit 0\n' >"$root/usr/bin/ischroot"
	chmod 755 "$root/usr/bin/ischroot"
}

# hook_customize runs after all packages are installed.
hook_customize() {
	local root=$1
	log "customizing the root filesystem"
	cp -a --no-preserve=ownership "$here/rootfs/." "$root/"
	install -m 0755 "$work/tutti" "$root/usr/local/bin/tutti"
	mkdir -p "$root/var/lib/tutti"

	# Host keys made during the install would be shared by every speaker:
	# tutti-ssh-keys.service makes them on the data partition instead.
	rm -f "$root"/etc/ssh/ssh_host_*

	# Read-only root: resolv.conf is resolved's, the machine id is transient.
	ln -sfn /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
	: >"$root/etc/machine-id"
	# The wpa_supplicant configuration is written at boot by tutti-config.
	ln -sfn /run/tutti/wpa_supplicant-wlan0.conf "$root/etc/wpa_supplicant/wpa_supplicant-wlan0.conf"

	chroot "$root" systemctl enable \
		tutti-config.service tutti-speaker.service tutti-hub.service \
		tutti-grow-data.service \
		systemd-networkd.service systemd-resolved.service systemd-timesyncd.service
	# wpa_supplicant starts when wlan0 appears (not at boot, which would wait
	# 90 s for a device a Pi 3 A+ with a USB sound card may not have).
	mkdir -p "$root/etc/systemd/system/sys-subsystem-net-devices-wlan0.device.wants"
	ln -sfn /lib/systemd/system/wpa_supplicant@.service \
		"$root/etc/systemd/system/sys-subsystem-net-devices-wlan0.device.wants/wpa_supplicant@wlan0.service"
	# ALSA's own state units would save mixer state to the read-only root at
	# shutdown (tutti-alsa-unmute@.service sets the mixers at every boot); a
	# read-only root has no use for package timers and backups;
	# systemd-firstboot would prompt on the console, since an empty machine-id
	# means "first boot"; wpa_supplicant.service is the D-Bus-driven one, not
	# wpa_supplicant@wlan0.
	chroot "$root" systemctl mask \
		alsa-restore.service alsa-state.service \
		apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
		e2scrub_all.timer e2scrub_reap.service \
		systemd-firstboot.service wpa_supplicant.service
	# alsa-utils' udev rule restores a mixer state that is never saved (exit
	# 99 in the log): 90-tutti-alsa-unmute.rules replaces it.
	ln -sfn /dev/null "$root/etc/udev/rules.d/90-alsa-restore.rules"

	# One initramfs, then raspi-firmware's hook fills /boot/firmware (kernel,
	# initrd, DTBs, config.txt, cmdline.txt; the blobs came with its postinst).
	rm "$root/usr/sbin/update-initramfs"
	chroot "$root" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
	log "making the initramfs (slow under emulation)"
	chroot "$root" update-initramfs -c -k all
	rm "$root/usr/bin/ischroot"
	chroot "$root" dpkg-divert --quiet --local --rename --remove /usr/bin/ischroot

	# raspi-firmware writes "rw"; this root is read-only from the first mount.
	sed -i 's/ rw / ro /; s/  */ /g; s/^ //; s/ $//' "$root/boot/firmware/cmdline.txt"
	local f
	for f in config.txt cmdline.txt start.elf bootcode.bin; do
		[ -s "$root/boot/firmware/$f" ] || { echo "build.sh: /boot/firmware/$f is missing" >&2; exit 1; }
	done
	grep -qw ro "$root/boot/firmware/cmdline.txt" || { echo "build.sh: cmdline.txt lacks ro" >&2; exit 1; }
	grep -q 'root=LABEL=RASPIROOT' "$root/boot/firmware/cmdline.txt" || { echo "build.sh: cmdline.txt lacks root=LABEL=RASPIROOT" >&2; exit 1; }
	grep -q '^dtparam=audio=on' "$root/boot/firmware/config.txt" || { echo "build.sh: config.txt does not enable audio" >&2; exit 1; }
	ls "$root"/boot/firmware/initrd.img-* "$root"/boot/firmware/vmlinuz-* >/dev/null
}

# write assembles the image from the root filesystem without loop devices:
# each partition is made in its own file and placed with dd.
write() {
	local version=$1
	local name="tutti-$version-arm64"
	local root="$work/root" firm="$work/firmware"
	log "writing the image"

	# mmdebstrap's cleanup removed it; dbus wants it to be the transient id.
	ln -sfn /etc/machine-id "$root/var/lib/dbus/machine-id"

	rm -rf "$firm"
	mkdir -p "$firm"
	mv "$root"/boot/firmware/* "$firm/"
	cp "$here/tutti.toml" "$firm/tutti.toml"

	# p1: FAT32.
	rm -f "$work/p1.img"
	mkfs.vfat -F 32 -n RASPIFIRM -C "$work/p1.img" $((firm_mib * 1024)) >/dev/null
	MTOOLS_SKIP_CHECK=1 mcopy -i "$work/p1.img" -s -p -m "$firm"/* ::/

	# p2: the root, with room for ext4's own metadata and journal only, since
	# nothing writes to it.
	local used_mib root_mib
	used_mib=$(du -s --block-size=1M "$root" | cut -f1)
	root_mib=$(((used_mib * 115 / 100 + 64 + 3) / 4 * 4))
	rm -f "$work/p2.img"
	mkfs.ext4 -q -L RASPIROOT -d "$root" "$work/p2.img" "${root_mib}M"

	# p3: the data partition. 4 KiB blocks and room in the group descriptor
	# table for growing online to 1 TiB (the default for 64 MiB would be
	# 1 KiB blocks and at most 64 GiB); no blocks reserved, all is root's.
	rm -f "$work/p3.img"
	mkfs.ext4 -q -L TUTTIDATA -b 4096 -m 0 -E resize=268435456 "$work/p3.img" "${data_mib}M"

	local img="$work/$name.img"
	local p1_start=4 p2_start=$((4 + firm_mib))
	local p3_start=$((p2_start + root_mib))
	local total=$((p3_start + data_mib))
	rm -f "$img"
	truncate -s "${total}M" "$img"
	sfdisk --quiet "$img" <<-EOF
		label: dos
		unit: sectors
		start=$((p1_start * 2048)), size=$((firm_mib * 2048)), type=c
		start=$((p2_start * 2048)), size=$((root_mib * 2048)), type=83
		start=$((p3_start * 2048)), size=$((data_mib * 2048)), type=83
	EOF
	dd if="$work/p1.img" of="$img" bs=1M seek=$p1_start conv=notrunc,sparse status=none
	dd if="$work/p2.img" of="$img" bs=1M seek=$p2_start conv=notrunc,sparse status=none
	dd if="$work/p3.img" of="$img" bs=1M seek=$p3_start conv=notrunc,sparse status=none
	rm -f "$work/p1.img" "$work/p2.img" "$work/p3.img"

	log "bmap and compression"
	rm -f "$out"/tutti-*-arm64.*
	bmaptool create -o "$out/$name.bmap" "$img"
	zstd -q -T0 -10 -f -o "$out/$name.img.zst" "$img"
	(cd "$out" && sha256sum "$name.img.zst" >"$name.img.zst.sha256")
	# The raw image stays in out/_work until the next build.
	ln -sfn "$name.img" "$work/image.img"
}

main() {
	[ "$(id -u)" -eq 0 ] || { echo "build.sh: run as root (mmdebstrap --mode=root)" >&2; exit 1; }
	local start version
	start=$(date +%s)
	version=$(git -C "$repo" describe --always --dirty 2>/dev/null || echo dev)
	log "tutti image $version"

	host_tools
	rm -rf "$work"
	mkdir -p "$work"
	build_tutti
	rootfs
	write "$version"

	local name="tutti-$version-arm64" raw
	raw=$(stat -c %s "$work/$name.img")
	echo
	echo "image:      $out/$name.img.zst"
	echo "raw size:   $((raw / 1048576)) MiB ($(du -m "$work/$name.img" | cut -f1) MiB allocated)"
	echo "zstd size:  $(($(stat -c %s "$out/$name.img.zst") / 1048576)) MiB"
	echo "sha256:     $(cut -d' ' -f1 "$out/$name.img.zst.sha256")"
	echo "bmap:       $out/$name.bmap"
	echo "build time: $(($(date +%s) - start)) s"
}

case "${1:-}" in
hook-essential) hook_essential "$2" ;;
hook-customize) hook_customize "$2" ;;
"") main ;;
*) echo "usage: $0 (as root; the hook-* arguments are mmdebstrap's)" >&2; exit 2 ;;
esac
