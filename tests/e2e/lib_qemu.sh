# lib_qemu.sh: runs a command as root inside a QEMU guest booted from Debian's kernel
# (linux-image-amd64), for what this machine's own kernel cannot do (e.g. 802.1Q). Sourced
# after lib.sh, not run. The guest sees this machine's root file system read-only over 9p
# under a tmpfs overlay (writes stay in the guest), has no network device, and its output
# comes back on a second serial port. TCG only: no /dev/kvm needed.

# qemu_need: sets QEMU_KVER, QEMU_KERNEL (a Debian kernel with the 9p, overlay and 802.1Q
# modules) or skips the test (exit 77) saying what is missing.
qemu_need() {
	command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86 not installed (scripts/bootstrap)"
	command -v cpio >/dev/null || skip "cpio not installed (scripts/bootstrap)"
	dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | qgrep 'ok installed' ||
		skip "busybox-static not installed (scripts/bootstrap)"
	QEMU_KERNEL=""
	local k v
	for k in /boot/vmlinuz-*-amd64; do
		[ -r "$k" ] || continue
		v=${k#/boot/vmlinuz-}
		[ -e "/lib/modules/$v/kernel/net/8021q/8021q.ko" ] || continue
		[ -e "/lib/modules/$v/kernel/fs/9p/9p.ko" ] || continue
		QEMU_KERNEL=$k
		QEMU_KVER=$v
	done
	[ -n "$QEMU_KERNEL" ] || skip "no Debian kernel with 8021q and 9p modules (linux-image-amd64, scripts/bootstrap)"
}

# qemu_initramfs OUT: writes a gzipped cpio to OUT: static busybox, the modules that mount
# the root over 9p with an overlay, and an init that switches into it and runs the command
# named by moat.run= on the kernel command line (see qemu_run).
qemu_initramfs() {
	local out=$1 dir="$T/initramfs" m path
	rm -rf "$dir"
	mkdir -p "$dir/bin" "$dir/mods" "$dir/proc" "$dir/sys" "$dir/dev" "$dir/lower" "$dir/rw" "$dir/newroot"
	cp /bin/busybox "$dir/bin/busybox"
	: >"$dir/mods/order"
	for m in virtio_pci 9pnet_virtio 9p overlay; do
		modprobe -S "$QEMU_KVER" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
	done | awk '!seen[$0]++' | while read -r path; do
		cp "$path" "$dir/mods/"
		basename "$path" >>"$dir/mods/order"
	done
	cat >"$dir/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for m in $(/bin/busybox cat /mods/order); do /bin/busybox insmod "/mods/$m" || echo "moat-init: insmod $m failed"; done
/bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose root /lower || echo "moat-init: 9p mount failed"
/bin/busybox mount -t tmpfs -o mode=0755 rw /rw
/bin/busybox mkdir -p /rw/upper /rw/work
/bin/busybox mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
	echo "moat-init: overlay mount failed"
run=""
for a in $(/bin/busybox cat /proc/cmdline); do case "$a" in moat.run=*) run=${a#moat.run=} ;; esac; done
/bin/busybox mount --move /dev /newroot/dev
/bin/busybox umount /proc /sys
exec /bin/busybox switch_root /newroot /bin/bash "$run"
INIT
	chmod 0755 "$dir/init"
	(cd "$dir" && find . | cpio -o -H newc --quiet) | gzip -1 >"$out"
}

# qemu_run SECONDS SCRIPT RESULT: boots the guest, which runs `bash SCRIPT` as pid 1 (SCRIPT
# must be on the root file system; it sees the same paths) with the guest's /dev/ttyS1 as its
# result channel, written to RESULT; the console goes to $T/qemu-console.log. The guest
# powers off when SCRIPT ends (it must not return: end it with qemu_guest_poweroff).
# Returns qemu's exit status; killed after SECONDS.
qemu_run() {
	local secs=$1 script=$2 result=$3 smp=1
	[ "$(nproc)" -ge 2 ] && smp=2
	qemu_initramfs "$T/initramfs.cpio.gz"
	set +e
	timeout -k 5 "$secs" qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -cpu max -smp $smp -m 768 \
		-nodefaults -display none -no-reboot -nic none \
		-L /usr/share/seabios -L /usr/share/qemu \
		-kernel "$QEMU_KERNEL" -initrd "$T/initramfs.cpio.gz" \
		-append "console=ttyS0 panic=-1 loglevel=4 moat.run=$script" \
		-virtfs local,path=/,security_model=none,readonly=on,mount_tag=root,multidevs=remap \
		-serial "file:$T/qemu-console.log" -serial "file:$result" \
		</dev/null >"$T/qemu.out" 2>&1
	local rc=$?
	set -e
	return $rc
}
