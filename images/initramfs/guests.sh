# Sourced by dom0's init when the run has guests (/pvhdma/guests holds one
# <name>.cfg per guest, written by the harness, with their kernel and
# initramfs). Starts Xen's toolstack, creates each guest, relays its console
# and watches it. What it prints on dom0's console, for the harness:
#   PVHDMA-GUEST-STARTED <name> <domid>
#   PVHDMA-GUEST <name> <one line of the guest's console>
#   PVHDMA-GUEST-FAILED <name> <why>    the guest never ran
#   PVHDMA-GUEST-CRASHED <name> <why>   it ran and died
# Each report line of a guest (PVHDMA-GUEST-...) it has relayed also goes to
# /run/pvhdma/relayed/guest-<name>.log.
# The agent finds each guest's domain id in /run/pvhdma/guests/<name>.domid
# and its console in /var/log/xen/console/guest-<name>.log.

T=/pvhdma/toolstack
# The toolstack's libraries sit where the loader resolved them in its root.
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu

# Load each module the image set shipped, in order. It ships every module
# the kernel does not have built in, so a missing .ko is already there.
guests_load() {
	for m in "$@"; do
		[ -e "/lib/modules/$m.ko" ] || continue
		if ! out=$(insmod "/lib/modules/$m.ko" 2>&1); then
			guests_fail_all "insmod $m.ko: $out"
			return 1
		fi
	done
}

guests_fail_all() {
	for cfg in /pvhdma/guests/*.cfg; do
		echo "PVHDMA-GUEST-FAILED $(basename "$cfg" .cfg) toolstack: $1"
	done
}

# One guest's console, line by line, with its name in front. xenconsoled
# creates the log when the guest's console connects; tail -F waits for it.
# A guest's boot log can run far ahead of dom0's serial console, so each
# report line is also copied once passed on: the agent waits on that copy,
# not on xenconsoled's log, before it powers dom0 off.
guest_relay() {
	tail -n +1 -F "/var/log/xen/console/guest-$1.log" 2>/dev/null |
		while IFS= read -r line; do
			echo "PVHDMA-GUEST $1 $line"
			case "$line" in
			*PVHDMA-GUEST-*) echo "$line" >>"/run/pvhdma/relayed/guest-$1.log" ;;
			esac
		done
}

# Poll the guest's state once a second: on_crash="preserve" keeps a crashed
# guest listed with a 'c' in its state, on_poweroff/on_reboot remove it.
guest_watch() {
	missing=0
	while sleep 1; do
		listing=$($T/xl list "$1" 2>&1)
		state=$(echo "$listing" | awk 'NR == 2 { print $5 }')
		case "$state" in
		"")
			# Twice in a row, so one failed xl call is not a verdict.
			missing=$((missing + 1))
			[ $missing -lt 2 ] && continue
			echo "PVHDMA-GUEST-CRASHED $1 the domain is gone (xl list: $(echo "$listing" | tr '\n' ' ')) $(tail -n 3 "/var/log/xen/xl-$1.log" 2>/dev/null | tr '\n' ' ')"
			return ;;
		*c*)
			echo "PVHDMA-GUEST-CRASHED $1 Xen reports the domain crashed (state $state)"
			$T/xl destroy "$1" >/dev/null 2>&1
			return ;;
		*) missing=0 ;;
		esac
	done
}

# A toolstack daemon in the foreground of a subshell: if it ever exits, its
# last words reach the console (a dead xenconsoled stalls every guest).
guest_daemon() {
	d=$1
	shift
	$T/$d "$@" >"/run/$d.log" 2>&1
	rc=$?
	echo "pvhdma-guests: $d exited ($rc): $(tail -n 5 "/run/$d.log" | tr '\n' ' ')"
}

# dom0's memory as its balloon driver sees it, and the guest-physical room
# Linux keeps for foreign and grant mappings: where granted pages can land.
guests_memory() {
	b=/sys/devices/system/xen_memory/xen_memory0
	echo "pvhdma-guests: $1: balloon current $(cat $b/info/current_kb 2>/dev/null) kB target $(cat $b/target_kb 2>/dev/null) kB"
	grep -i -E "unusable|xen|reserved" /proc/iomem 2>/dev/null | sed "s/^/pvhdma-guests: iomem: /"
	# The guests' files never change: a new sum means dom0 memory changed under them.
	md5sum /pvhdma/guests/* /bin/busybox /bin/pvhdma-agent | sed "s/^/pvhdma-guests: $1: md5 /"
}

# A guest with a vif: dom0's NIC becomes a port of bridge xenbr0, where
# the vif hotplug script (vif-pvhdma) adds each vif. dom0 itself needs no
# address: guests talk to QEMU's user network through the bridge.
guests_net_up() {
	if [ ! -e /sys/class/net/eth0 ]; then
		if ! out=$(insmod /lib/modules/e1000.ko 2>&1); then
			guests_fail_all "insmod e1000.ko: $out"
			return 1
		fi
		i=0
		until [ -e /sys/class/net/eth0 ] || [ $i -ge 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
	fi
	guests_load llc stp bridge xen-netback || return 1
	if ! out=$(ip link add xenbr0 type bridge 2>&1 &&
		ip link set eth0 master xenbr0 2>&1 &&
		ip link set eth0 up 2>&1 &&
		ip link set xenbr0 up 2>&1); then
		guests_fail_all "bridge xenbr0: $out"
		return 1
	fi
	echo "pvhdma-guests: bridge xenbr0 up with eth0"
}

# A guest with a disk: dom0's IDE controller (ata_piix, 32-bit DMA) and
# its disk come up as /dev/sda, which the guest's vbd names; blkback serves
# it once the hotplug script (block-pvhdma) has published the device.
guests_disk_up() {
	guests_load scsi_common scsi_mod libata ata_piix sd_mod xen-blkback || return 1
	i=0
	until [ -b /dev/sda ] || [ $i -ge 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if [ ! -b /dev/sda ]; then
		guests_fail_all "no /dev/sda 30 s after insmod ata_piix"
		return 1
	fi
	# The controller's PCI address, for the harness's view of its IOMMU trace.
	echo "pvhdma-guests: disk /dev/sda up ($(cat /sys/class/block/sda/size) sectors) at $(readlink -f /sys/class/block/sda)"
}

guests_start() {
	guests_memory "before the toolstack"
	mkdir -p /run/pvhdma/guests /run/pvhdma/relayed /var/lock
	guests_load xen-evtchn xen-privcmd xenfs xen-gntdev xen-gntalloc || return 1
	if ! out=$(mount -t xenfs xenfs /proc/xen 2>&1); then
		guests_fail_all "mount xenfs: $out"
		return 1
	fi
	# xenconsoled gives each guest console a pty.
	mkdir -p /dev/pts
	mount -t devpts devpts /dev/pts 2>/dev/null
	guest_daemon xenstored --no-fork --pid-file /run/xenstored.pid &
	# xenstored is ready when its socket is; xen-init-dom0 then writes dom0's nodes.
	i=0
	until [ -S /var/run/xenstored/socket ] || [ $i -ge 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if ! out=$($T/xen-init-dom0 2>&1); then
		guests_fail_all "xen-init-dom0: $out $(tail -n 3 /run/xenstored.log)"
		return 1
	fi
	guests_memory "after xen-init-dom0"
	if grep -q '^vif' /pvhdma/guests/*.cfg; then
		guests_net_up || return 1
	fi
	if grep -q '^disk' /pvhdma/guests/*.cfg; then
		guests_disk_up || return 1
	fi
	guest_daemon xenconsoled -i --log=guest --log-dir=/var/log/xen/console &

	for cfg in /pvhdma/guests/*.cfg; do
		name=$(basename "$cfg" .cfg)
		guest_relay "$name" &
		echo "pvhdma-guests: $name: console relay pid $!"
		if ! out=$($T/xl create "$cfg" 2>&1); then
			echo "$out" | sed "s/^/xl create $name: /"
			echo "PVHDMA-GUEST-FAILED $name xl create: $(echo "$out" | grep -m 1 'error' || echo "$out" | tail -n 1)"
			continue
		fi
		guests_memory "after xl create $name"
		domid=$($T/xl domid "$name" 2>/dev/null)
		echo "$domid" >"/run/pvhdma/guests/$name.domid"
		echo "PVHDMA-GUEST-STARTED $name $domid"
		guest_watch "$name" &
		echo "pvhdma-guests: $name: watcher pid $!"
	done
}
