/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * pvhdma user ABI: the ioctls on /dev/pvhdmaN (an op on dom0's own memory,
 * and the same op on another domain's granted pages).
 *
 * The contract crate (contract/src/uapi.rs) defines the same layout for
 * the agent; its drift test compares every define, enum value and field
 * here with it. A change needs both sides and a new PVHDMA_UAPI_VERSION.
 * Every field is naturally aligned and neither struct has implicit padding,
 * so the layout is identical for 32- and 64-bit callers.
 */
#ifndef PVHDMA_UAPI_H
#define PVHDMA_UAPI_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define PVHDMA_UAPI_VERSION 3
/* The device's descriptor limit. */
#define PVHDMA_MAX_SEGS 256
/* Segments of an op on granted pages: one granted 4 KiB page each. */
#define PVHDMA_MAX_GRANT_SEGS 16

enum pvhdma_kind {
	PVHDMA_KIND_COHERENT = 0,
	PVHDMA_KIND_SINGLE = 1,
	PVHDMA_KIND_SG = 2,
	PVHDMA_KIND_RAW = 3,
};

enum pvhdma_placement {
	PVHDMA_PLACE_ANY = 0,
	PVHDMA_PLACE_LOW = 1,
	PVHDMA_PLACE_HIGH = 2,
};

/* Same values as the device's CONTROL.DIR bit. */
enum pvhdma_dir {
	PVHDMA_DIR_TO_DEVICE = 0,
	PVHDMA_DIR_FROM_DEVICE = 1,
};

/* Same values as the device's PATTERN register. */
enum pvhdma_pattern {
	PVHDMA_PATTERN_FILL = 0,
	PVHDMA_PATTERN_INCREMENTING = 1,
	PVHDMA_PATTERN_XORSHIFT = 2,
};

/* Outcome of the driver's part; the device's view is in dev_*. */
enum pvhdma_result {
	PVHDMA_RES_OK = 0,           /* DMA programmed and completed (maybe with a device error) */
	PVHDMA_RES_MAP_ERROR = 1,    /* DMA API refused the mapping (or it bounced a read-only grant); nothing programmed */
	PVHDMA_RES_NO_HIGH_MEM = 2,  /* placement=high but no page at/above 4 GiB found */
	PVHDMA_RES_NO_MEM = 3,       /* allocation failed */
	PVHDMA_RES_TIMEOUT = 4,      /* device never reported DONE or ERROR */
	PVHDMA_RES_GRANT_MAP = 5,    /* a grant ref did not map (see its status) */
};

struct pvhdma_op {
	/* in */
	__u32 version;		/* PVHDMA_UAPI_VERSION */
	__u32 kind;		/* enum pvhdma_kind */
	__u32 placement;	/* enum pvhdma_placement */
	__u32 dir;		/* enum pvhdma_dir */
	__u32 pattern;		/* enum pvhdma_pattern */
	__u32 seed;
	__u32 tag;		/* written to TAG: the join key with device records */
	__u32 segments;		/* 1 except for sg: 1..PVHDMA_MAX_SEGS */
	__u32 size;		/* bytes per segment, 1..1 MiB; sg total <= 4 MiB */
	__u32 flags;		/* must be 0 */
	__u64 raw_addr;		/* raw only: bus address to program */
	__u64 segs_ptr;		/* user address of seg_cap struct pvhdma_seg */
	__u32 seg_cap;
	/* out */
	__u32 result;		/* enum pvhdma_result */
	__u32 nsegs;		/* entries written at segs_ptr */
	__u32 map_error;
	__u32 bounced;		/* some dma_addr != phys_addr */
	__u32 irq;		/* the completion interrupt arrived in time */
	__u32 intact;		/* data and CHECKSUM match the pattern */
	__u32 dev_status;
	__u32 dev_error;
	__u32 dev_seq;
	__u32 dev_checksum;
	__u32 expected_checksum;
	__u32 bytes_done;
	__u32 mismatch_at_done;	/* from-device data still differed from the pattern when DONE was first seen */
	__u64 len;		/* total bytes of the transfer */
	__u64 desc_addr;	/* sg: bus address of the descriptor list, else 0 */
	__u64 fault_addr;	/* FAULT_ADDR_HI:LO */
	__u64 mismatch_offset;	/* first wrong byte of from-device data, or ~0 */
};

/* Where one segment was: for the device (dma) and for the CPU (phys). */
struct pvhdma_seg {
	__u64 dma;
	__u64 phys;
};

#define PVHDMA_IOC_RUN _IOWR(0xd3, 1, struct pvhdma_op)

/* The grant is read-only: the device may read it, never write it. */
#define PVHDMA_GRANT_READONLY 0x1

/*
 * A single or sg op on another domain's pages, mapped the way a backend
 * (blkback, netback) maps a frontend's buffers: one granted 4 KiB page per
 * segment, so op.size <= 4096, op.segments <= PVHDMA_MAX_GRANT_SEGS and
 * op.placement is ANY. The granting domain filled the pages: the driver
 * never writes them from the CPU, it only checks them.
 */
struct pvhdma_grant_op {
	__u64 op_ptr;		/* user address of the struct pvhdma_op (in and out) */
	__u64 grants_ptr;	/* user address of op.segments struct pvhdma_grant_seg */
	__u32 domid;		/* the granting domain */
	__u32 flags;		/* PVHDMA_GRANT_* */
};

struct pvhdma_grant_seg {
	__u32 gref;		/* in: the grant ref of this segment's page */
	__s32 status;		/* out: GNTST_* of its map (0 = okay) */
};

#define PVHDMA_IOC_RUN_GRANT _IOW(0xd3, 2, struct pvhdma_grant_op)

#endif /* PVHDMA_UAPI_H */
