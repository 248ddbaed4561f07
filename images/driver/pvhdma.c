// SPDX-License-Identifier: GPL-2.0
/*
 * pvhdma: dom0 driver for the pvhdma DMA recorder (device/REGISTERS.md).
 *
 * Each ioctl on /dev/pvhdmaN runs one DMA through the DMA API exactly as a
 * real driver would, so the test sees what dma-direct/swiotlb do for a
 * device whose mask comes from its ADDR_BITS register.
 */
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/dma-mapping.h>
#include <linux/scatterlist.h>
#include <linux/interrupt.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/uaccess.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/vmalloc.h>
#include <linux/highmem.h>
#include <linux/completion.h>
#include <linux/mutex.h>
#include <linux/kref.h>
#include <linux/idr.h>
#include <linux/delay.h>
#include <linux/list.h>
#include <linux/sizes.h>
#include <xen/xen.h>
#include <xen/grant_table.h>

#include "pvhdma_uapi.h"

/* Linux before 6.8 (bookworm's 6.1) calls INTx "legacy". */
#ifndef PCI_IRQ_INTX
#define PCI_IRQ_INTX PCI_IRQ_LEGACY
#endif

#define DRV_NAME "pvhdma"

#define PVHDMA_VENDOR 0x5056
#define PVHDMA_DEVICE 0xd3a0

#define REG_ID		0x000
#define REG_VERSION	0x004
#define REG_ADDR_BITS	0x008
#define REG_CAPS	0x00c
#define REG_DMA_ADDR_LO	0x010
#define REG_DMA_ADDR_HI	0x014
#define REG_LENGTH	0x018
#define REG_CONTROL	0x01c
#define REG_PATTERN	0x020
#define REG_SEED	0x024
#define REG_TAG		0x028
#define REG_DOORBELL	0x02c
#define REG_STATUS	0x030
#define REG_ERROR	0x034
#define REG_IRQ_STATUS	0x038
#define REG_SEQ		0x03c
#define REG_CHECKSUM	0x040
#define REG_FAULT_LO	0x044
#define REG_FAULT_HI	0x048
#define REG_BYTES_DONE	0x04c

#define ID_MAGIC	0x50564844
#define CAPS_SG		BIT(0)
#define CAPS_MSI	BIT(1)
#define CAPS_ADDR_HI	BIT(2)
#define CTRL_FROM_DEV	BIT(0)
#define CTRL_SG		BIT(1)
#define CTRL_IRQ_EN	BIT(2)
#define STATUS_BUSY	BIT(0)
#define STATUS_DONE	BIT(1)
#define STATUS_ERROR	BIT(2)

#define MAX_XFER	SZ_1M
#define MAX_SG_TOTAL	SZ_4M
#define DESC_SIZE	16
/* Bounded so that a dom0 with no memory above 4 GiB fails fast. */
#define HIGH_TRIES	64
/*
 * A lost interrupt costs this much per op. Under Xen + TCG here some boots
 * lose every MSI (Xen logs "No irq handler for vector"), so keep it short;
 * the irq_count attribute tells late from never.
 */
#define IRQ_WAIT_MS	2000
#define POLL_WAIT_MS	10000
#define MAX_INSTANCES	8

struct pvhdma_dev {
	struct kref ref;
	struct mutex lock;	/* one operation at a time; guards @gone */
	bool gone;
	struct pci_dev *pdev;
	void __iomem *regs;
	struct miscdevice misc;
	char name[16];
	int id;
	u32 addr_bits;
	u32 caps;
	int irq;
	bool msi;
	struct completion done;
	atomic_t irqs;
};

static DEFINE_IDA(pvhdma_ida);

static bool use_msi = true;
module_param(use_msi, bool, 0444);
MODULE_PARM_DESC(use_msi, "try MSI before INTx (default: true)");

static u32 rd(struct pvhdma_dev *d, u32 off)
{
	return ioread32(d->regs + off);
}

static void wr(struct pvhdma_dev *d, u32 off, u32 val)
{
	iowrite32(val, d->regs + off);
}

/* --- pattern and checksum: must match REGISTERS.md byte for byte --- */

struct pattern_gen {
	u32 kind;
	u32 seed;
	u64 i;
	u32 x;
};

static void pattern_init(struct pattern_gen *g, u32 kind, u32 seed)
{
	g->kind = kind;
	g->seed = seed;
	g->i = 0;
	g->x = seed ? seed : 1;
}

static u8 pattern_next(struct pattern_gen *g)
{
	u8 b;

	switch (g->kind) {
	case PVHDMA_PATTERN_FILL:
		b = g->seed & 0xff;
		break;
	case PVHDMA_PATTERN_INCREMENTING:
		b = (g->seed + g->i) & 0xff;
		break;
	default:
		/* A new xorshift word starts every 4 bytes. */
		if ((g->i & 3) == 0) {
			g->x ^= g->x << 13;
			g->x ^= g->x >> 17;
			g->x ^= g->x << 5;
		}
		b = (g->x >> (8 * (g->i & 3))) & 0xff;
		break;
	}
	g->i++;
	return b;
}

static u32 fnv1a_step(u32 h, u8 b)
{
	return (h ^ b) * 0x01000193u;
}

#define FNV_INIT 0x811c9dc5u

/* --- buffers --- */

struct seg {
	struct page *page;
	unsigned int order;
	void *cpu;
	dma_addr_t dma;
	phys_addr_t phys;
	size_t len;
};

/* Another domain's granted pages, mapped into dom0 for one op. */
struct grant_ctx {
	u32 domid;
	bool ro;
	unsigned int n;
	bool allocated;
	struct pvhdma_grant_seg segs[PVHDMA_MAX_GRANT_SEGS];
	struct page *pages[PVHDMA_MAX_GRANT_SEGS];
	struct gnttab_map_grant_ref map[PVHDMA_MAX_GRANT_SEGS];
};

struct op_ctx {
	struct pvhdma_dev *d;
	struct pvhdma_op *op;
	struct grant_ctx *g;	/* NULL: the buffers are dom0's own */
	enum dma_data_direction dir;
	unsigned int nsegs;
	struct sg_table sgt;
	bool sgt_alloc;
	int sg_mapped;
	void *desc_cpu;
	dma_addr_t desc_dma;
	bool mapped;
	unsigned long unmap_attrs;
	/* op->segments entries, allocated with the context. */
	struct seg segs[];
};

static void free_page_list(struct list_head *held, unsigned int order)
{
	struct page *p, *n;

	list_for_each_entry_safe(p, n, held, lru) {
		list_del(&p->lru);
		__free_pages(p, order);
	}
}

/*
 * placement=high: the allocator prefers ZONE_NORMAL (>= 4 GiB on x86-64)
 * anyway, but falls back to DMA32 when Normal is short, so keep asking and
 * hold the low pages aside until a high one turns up or we give up.
 */
static struct page *alloc_high(unsigned int order)
{
	LIST_HEAD(held);
	struct page *page = NULL;
	int i;

	for (i = 0; i < HIGH_TRIES; i++) {
		struct page *p = alloc_pages(GFP_KERNEL | __GFP_NOWARN |
					     __GFP_NORETRY, order);
		if (!p)
			break;
		if (page_to_phys(p) >= SZ_4G) {
			page = p;
			break;
		}
		list_add(&p->lru, &held);
	}
	free_page_list(&held, order);
	return page;
}

static int alloc_seg(struct op_ctx *c, struct seg *s, size_t len)
{
	unsigned int order = get_order(len);
	struct page *page;

	if (c->g) {
		unsigned int i = s - c->segs;

		/* validate_grant() bounds both; this keeps the pages in reach. */
		if (i >= c->g->n || len > PAGE_SIZE)
			return PVHDMA_RES_NO_MEM;
		s->page = c->g->pages[i];
		s->order = 0;
		s->cpu = page_address(s->page);
		s->phys = page_to_phys(s->page);
		s->len = len;
		return PVHDMA_RES_OK;
	}

	switch (c->op->placement) {
	case PVHDMA_PLACE_LOW:
		page = alloc_pages(GFP_KERNEL | GFP_DMA32 | __GFP_NOWARN, order);
		break;
	case PVHDMA_PLACE_HIGH:
		page = alloc_high(order);
		if (!page)
			return PVHDMA_RES_NO_HIGH_MEM;
		break;
	default:
		page = alloc_pages(GFP_KERNEL | __GFP_NOWARN, order);
		break;
	}
	if (!page)
		return PVHDMA_RES_NO_MEM;
	s->page = page;
	s->order = order;
	s->cpu = page_address(page);
	s->phys = page_to_phys(page);
	s->len = len;
	return PVHDMA_RES_OK;
}

static phys_addr_t cpu_to_phys(void *cpu)
{
	/* dma-direct may hand out remapped memory for coherent buffers. */
	if (is_vmalloc_addr(cpu))
		return page_to_phys(vmalloc_to_page(cpu)) + offset_in_page(cpu);
	return virt_to_phys(cpu);
}

/* Fill to-device data with the pattern, from-device data with its complement so untouched bytes show. */
static void prepare_data(struct op_ctx *c)
{
	struct pattern_gen g;
	unsigned int i;
	size_t j;

	/*
	 * The granting domain filled its pages; a CPU write to a read-only
	 * grant would fault in dom0, so foreign data is never touched.
	 */
	if (c->g)
		return;
	pattern_init(&g, c->op->pattern, c->op->seed);
	for (i = 0; i < c->nsegs; i++) {
		u8 *p = c->segs[i].cpu;

		for (j = 0; j < c->segs[i].len; j++) {
			u8 b = pattern_next(&g);

			p[j] = c->op->dir == PVHDMA_DIR_TO_DEVICE ? b : ~b;
		}
	}
}

/* First from-device byte that differs from the pattern, or ~0; also the pattern's FNV-1a. */
static u64 scan_data(struct op_ctx *c, u32 *hash)
{
	struct pvhdma_op *op = c->op;
	struct pattern_gen g;
	u32 h = FNV_INIT;
	u64 off = 0, mismatch = ~0ULL;
	unsigned int i;
	size_t j;

	pattern_init(&g, op->pattern, op->seed);
	for (i = 0; i < c->nsegs; i++) {
		const u8 *p = c->segs[i].cpu;

		for (j = 0; j < c->segs[i].len; j++, off++) {
			u8 b = pattern_next(&g);

			h = fnv1a_step(h, b);
			if (op->dir == PVHDMA_DIR_FROM_DEVICE && p[j] != b &&
			    mismatch == ~0ULL)
				mismatch = off;
		}
	}
	*hash = h;
	return mismatch;
}

static void check_data(struct op_ctx *c)
{
	struct pvhdma_op *op = c->op;
	u32 h;

	op->mismatch_offset = scan_data(c, &h);
	op->expected_checksum = h;
	op->intact = op->mismatch_offset == ~0ULL && op->dev_error == 0 &&
		     (op->dev_status & STATUS_DONE) &&
		     op->dev_checksum == h && op->bytes_done == op->len;
}

/* --- device programming --- */

static irqreturn_t pvhdma_irq(int irq, void *data)
{
	struct pvhdma_dev *d = data;

	/* INTx may be shared: only claim what our device raised. */
	if (!d->msi && !(rd(d, REG_IRQ_STATUS) & 1))
		return IRQ_NONE;
	wr(d, REG_IRQ_STATUS, 1);
	atomic_inc(&d->irqs);
	complete(&d->done);
	return IRQ_HANDLED;
}

/*
 * A device may claim DONE before its writes reached memory; the data can
 * still arrive before the final check, which then cannot tell. So look at
 * the buffer as soon as DONE is seen, before anything else can pass the
 * time: the device's writes must already be there.
 */
static void look_at_done(struct op_ctx *c)
{
	struct device *dev = &c->d->pdev->dev;
	struct pvhdma_op *op = c->op;
	u32 h;

	if (op->dir != PVHDMA_DIR_FROM_DEVICE || op->result != PVHDMA_RES_OK ||
	    !(op->dev_status & STATUS_DONE) || op->dev_error)
		return;
	/* A bounced streaming buffer holds the data only once synced back. */
	if (c->mapped && op->kind == PVHDMA_KIND_SINGLE)
		dma_sync_single_for_cpu(dev, c->segs[0].dma, c->segs[0].len,
					c->dir);
	if (c->sg_mapped > 0)
		dma_sync_sg_for_cpu(dev, c->sgt.sgl, c->nsegs, c->dir);
	op->mismatch_at_done = scan_data(c, &h) != ~0ULL;
}

static void program_addr(struct pvhdma_dev *d, u64 addr)
{
	wr(d, REG_DMA_ADDR_LO, lower_32_bits(addr));
	/* Without CAPS.ADDR_HI the register does not exist (REGISTERS.md). */
	if (d->caps & CAPS_ADDR_HI)
		wr(d, REG_DMA_ADDR_HI, upper_32_bits(addr));
}

/* c: the op's buffers, looked at as soon as DONE is seen; NULL for raw. */
static void run_device(struct pvhdma_dev *d, struct op_ctx *c,
		       struct pvhdma_op *op, u64 addr, u32 length, bool sg)
{
	unsigned long deadline;
	u32 status;

	program_addr(d, addr);
	wr(d, REG_LENGTH, length);
	wr(d, REG_PATTERN, op->pattern);
	wr(d, REG_SEED, op->seed);
	wr(d, REG_TAG, op->tag);
	wr(d, REG_IRQ_STATUS, 1);
	reinit_completion(&d->done);
	wr(d, REG_CONTROL, (op->dir == PVHDMA_DIR_FROM_DEVICE ? CTRL_FROM_DEV : 0) |
			   (sg ? CTRL_SG : 0) | CTRL_IRQ_EN);
	/* Orders all prior CPU writes to DMA buffers before the doorbell. */
	wmb();
	wr(d, REG_DOORBELL, 1);

	op->irq = wait_for_completion_timeout(&d->done,
					      msecs_to_jiffies(IRQ_WAIT_MS)) != 0;
	/* A lost interrupt is a finding, not a failure: fall back to polling. */
	deadline = jiffies + msecs_to_jiffies(POLL_WAIT_MS);
	for (;;) {
		status = rd(d, REG_STATUS);
		if ((status & (STATUS_DONE | STATUS_ERROR)) &&
		    !(status & STATUS_BUSY))
			break;
		if (time_after(jiffies, deadline)) {
			op->result = PVHDMA_RES_TIMEOUT;
			break;
		}
		usleep_range(500, 1000);
	}
	/* Reads of DMA'd data must not be reordered before the status read. */
	rmb();
	op->dev_status = status;
	op->dev_error = rd(d, REG_ERROR);
	if (c)
		look_at_done(c);
	op->dev_seq = rd(d, REG_SEQ);
	op->dev_checksum = rd(d, REG_CHECKSUM);
	op->bytes_done = rd(d, REG_BYTES_DONE);
	op->fault_addr = ((u64)rd(d, REG_FAULT_HI) << 32) | rd(d, REG_FAULT_LO);
}

static void note_addrs(struct op_ctx *c)
{
	struct pvhdma_op *op = c->op;
	unsigned int i;

	op->nsegs = c->nsegs;
	for (i = 0; i < c->nsegs; i++) {
		if (c->segs[i].dma != c->segs[i].phys)
			op->bounced = 1;
	}
}

static void op_cleanup(struct op_ctx *c)
{
	struct device *dev = &c->d->pdev->dev;
	unsigned int i;

	if (c->desc_cpu)
		dma_free_coherent(dev, c->nsegs * DESC_SIZE, c->desc_cpu,
				  c->desc_dma);
	if (c->sg_mapped > 0)
		dma_unmap_sg_attrs(dev, c->sgt.sgl, c->nsegs, c->dir,
				   c->unmap_attrs);
	if (c->sgt_alloc)
		sg_free_table(&c->sgt);
	for (i = 0; i < c->nsegs; i++) {
		struct seg *s = &c->segs[i];

		if (c->op->kind == PVHDMA_KIND_COHERENT) {
			if (s->cpu)
				dma_free_coherent(dev, s->len, s->cpu, s->dma);
			continue;
		}
		if (c->mapped && c->op->kind == PVHDMA_KIND_SINGLE)
			dma_unmap_page_attrs(dev, s->dma, s->len, c->dir,
					     c->unmap_attrs);
		/* Granted pages go back through grant_unmap(). */
		if (s->page && !c->g)
			__free_pages(s->page, s->order);
	}
}

/* Streaming mappings must be unmapped before the CPU looks at the data. */
static void op_unmap(struct op_ctx *c)
{
	struct device *dev = &c->d->pdev->dev;

	if (c->mapped && c->op->kind == PVHDMA_KIND_SINGLE) {
		dma_unmap_page_attrs(dev, c->segs[0].dma, c->segs[0].len, c->dir,
				     c->unmap_attrs);
		c->mapped = false;
	}
	if (c->sg_mapped > 0) {
		dma_unmap_sg_attrs(dev, c->sgt.sgl, c->nsegs, c->dir,
				   c->unmap_attrs);
		c->sg_mapped = 0;
	}
}

/*
 * Copying a bounce back into a read-only grant would be dom0's CPU writing
 * it (and faulting): such a mapping is never given to the device and is
 * unmapped without the copy. Any segment whose bus address is not its
 * physical one may be a bounce.
 */
static bool ro_bounced(struct op_ctx *c)
{
	unsigned int i;

	if (!c->g || !c->g->ro || c->dir != DMA_FROM_DEVICE)
		return false;
	for (i = 0; i < c->nsegs; i++) {
		if (c->segs[i].dma != c->segs[i].phys) {
			c->unmap_attrs = DMA_ATTR_SKIP_CPU_SYNC;
			c->op->map_error = 1;
			c->op->result = PVHDMA_RES_MAP_ERROR;
			return true;
		}
	}
	return false;
}

static void op_coherent(struct op_ctx *c)
{
	struct device *dev = &c->d->pdev->dev;
	struct seg *s = &c->segs[0];

	c->nsegs = 1;
	s->len = c->op->size;
	s->cpu = dma_alloc_coherent(dev, s->len, &s->dma, GFP_KERNEL);
	if (!s->cpu) {
		/* For coherent memory, NULL is the DMA API's "cannot satisfy the mask". */
		c->op->map_error = 1;
		c->op->result = PVHDMA_RES_MAP_ERROR;
		c->nsegs = 0;
		return;
	}
	s->phys = cpu_to_phys(s->cpu);
	note_addrs(c);
	prepare_data(c);
	run_device(c->d, c, c->op, s->dma, s->len, false);
	check_data(c);
}

static void op_single(struct op_ctx *c)
{
	struct device *dev = &c->d->pdev->dev;
	struct seg *s = &c->segs[0];
	int res;

	res = alloc_seg(c, s, c->op->size);
	if (res) {
		c->op->result = res;
		return;
	}
	c->nsegs = 1;
	prepare_data(c);
	s->dma = dma_map_page(dev, s->page, 0, s->len, c->dir);
	if (dma_mapping_error(dev, s->dma)) {
		c->op->map_error = 1;
		c->op->result = PVHDMA_RES_MAP_ERROR;
		/* Report the buffer anyway: where it was is the point of the test. */
		s->dma = 0;
		c->op->nsegs = 1;
		return;
	}
	c->mapped = true;
	note_addrs(c);
	if (ro_bounced(c))
		return;
	run_device(c->d, c, c->op, s->dma, s->len, false);
	op_unmap(c);
	check_data(c);
}

static void op_sg(struct op_ctx *c)
{
	struct device *dev = &c->d->pdev->dev;
	struct scatterlist *sg;
	__le64 *desc;
	unsigned int i;
	int res;

	for (i = 0; i < c->op->segments; i++) {
		res = alloc_seg(c, &c->segs[i], c->op->size);
		if (res) {
			c->op->result = res;
			return;
		}
		c->nsegs = i + 1;
	}
	if (sg_alloc_table(&c->sgt, c->nsegs, GFP_KERNEL)) {
		c->op->result = PVHDMA_RES_NO_MEM;
		return;
	}
	c->sgt_alloc = true;
	for_each_sg(c->sgt.sgl, sg, c->nsegs, i)
		sg_set_page(sg, c->segs[i].page, c->segs[i].len, 0);
	prepare_data(c);

	c->sg_mapped = dma_map_sg(dev, c->sgt.sgl, c->nsegs, c->dir);
	if (c->sg_mapped <= 0) {
		c->op->map_error = 1;
		c->op->result = PVHDMA_RES_MAP_ERROR;
		c->sg_mapped = 0;
		/* Where the buffers were is the point of the test; dma stays 0. */
		c->op->nsegs = c->nsegs;
		return;
	}

	c->desc_cpu = dma_alloc_coherent(dev, c->nsegs * DESC_SIZE, &c->desc_dma,
					 GFP_KERNEL);
	if (!c->desc_cpu) {
		c->op->map_error = 1;
		c->op->result = PVHDMA_RES_MAP_ERROR;
		return;
	}
	c->op->desc_addr = c->desc_dma;

	/*
	 * dma-direct and swiotlb never merge entries, so mapped entry i is
	 * segment i; an IOMMU that merged would show as fewer descriptors.
	 */
	desc = c->desc_cpu;
	for_each_sg(c->sgt.sgl, sg, (unsigned int)c->sg_mapped, i) {
		desc[2 * i] = cpu_to_le64(sg_dma_address(sg));
		desc[2 * i + 1] = cpu_to_le64(sg_dma_len(sg));
		c->segs[i].dma = sg_dma_address(sg);
	}
	note_addrs(c);
	c->op->nsegs = c->sg_mapped;
	if (ro_bounced(c))
		return;
	run_device(c->d, c, c->op, c->desc_dma, c->sg_mapped, true);
	op_unmap(c);
	check_data(c);
}

static void op_raw(struct op_ctx *c)
{
	struct pvhdma_op *op = c->op;
	u64 addr = op->raw_addr;

	/* Record what the device actually holds, not what was asked for. */
	if (!(c->d->caps & CAPS_ADDR_HI))
		addr = lower_32_bits(addr);
	op->nsegs = 1;
	c->segs[0].dma = addr;
	c->segs[0].phys = op->raw_addr;
	run_device(c->d, NULL, op, addr, op->size, false);
	/* No buffer to compare with: raw ops are judged by the device's ERROR. */
	op->intact = 0;
	op->mismatch_offset = ~0ULL;
}

static int validate(const struct pvhdma_op *op)
{
	if (op->version != PVHDMA_UAPI_VERSION || op->flags)
		return -EINVAL;
	if (op->kind > PVHDMA_KIND_RAW || op->placement > PVHDMA_PLACE_HIGH ||
	    op->dir > PVHDMA_DIR_FROM_DEVICE || op->pattern > PVHDMA_PATTERN_XORSHIFT)
		return -EINVAL;
	if (op->size == 0 || op->size > MAX_XFER)
		return -EINVAL;
	if (op->kind == PVHDMA_KIND_SG) {
		if (op->segments == 0 || op->segments > PVHDMA_MAX_SEGS ||
		    (u64)op->segments * op->size > MAX_SG_TOTAL)
			return -EINVAL;
	} else if (op->segments != 1) {
		return -EINVAL;
	}
	if (op->seg_cap < op->segments || !op->segs_ptr)
		return -EINVAL;
	return 0;
}

/* Where each segment was, for the caller: op->nsegs entries at segs_ptr. */
static int copy_segs_out(const struct op_ctx *c, const struct pvhdma_op *op)
{
	struct pvhdma_seg __user *out = u64_to_user_ptr(op->segs_ptr);
	unsigned int i;

	for (i = 0; i < op->nsegs && i < op->seg_cap; i++) {
		struct pvhdma_seg s = {
			.dma = c->segs[i].dma,
			.phys = c->segs[i].phys,
		};

		if (copy_to_user(&out[i], &s, sizeof(s)))
			return -EFAULT;
	}
	return 0;
}

static int run_op(struct pvhdma_dev *d, struct pvhdma_op *op,
		  struct grant_ctx *g)
{
	struct op_ctx *c;
	int ret;

	c = kzalloc(struct_size(c, segs, op->segments), GFP_KERNEL);
	if (!c) {
		op->result = PVHDMA_RES_NO_MEM;
		return 0;
	}
	c->d = d;
	c->op = op;
	c->g = g;
	c->dir = op->dir == PVHDMA_DIR_TO_DEVICE ? DMA_TO_DEVICE : DMA_FROM_DEVICE;
	op->len = (u64)op->size * op->segments;
	op->mismatch_offset = ~0ULL;

	switch (op->kind) {
	case PVHDMA_KIND_COHERENT:
		op_coherent(c);
		break;
	case PVHDMA_KIND_SINGLE:
		op_single(c);
		break;
	case PVHDMA_KIND_SG:
		op_sg(c);
		break;
	default:
		op_raw(c);
		break;
	}
	op_cleanup(c);
	ret = copy_segs_out(c, op);
	kfree(c);

	dev_dbg(&d->pdev->dev,
		"op tag=%u kind=%u result=%u status=%#x error=%u irq=%u intact=%u\n",
		op->tag, op->kind, op->result, op->dev_status, op->dev_error,
		op->irq, op->intact);
	return ret;
}

/* --- granted pages: what a backend does with a frontend's buffers --- */

static int validate_grant(const struct pvhdma_grant_op *gop,
			  const struct pvhdma_op *op)
{
	if (op->kind != PVHDMA_KIND_SINGLE && op->kind != PVHDMA_KIND_SG)
		return -EINVAL;
	if (op->placement != PVHDMA_PLACE_ANY || op->size > PAGE_SIZE ||
	    op->segments > PVHDMA_MAX_GRANT_SEGS)
		return -EINVAL;
	if (gop->flags & ~PVHDMA_GRANT_READONLY || !gop->grants_ptr)
		return -EINVAL;
	/*
	 * A read-only grant may take from-device data: the device's own write
	 * is the IOMMU's to refuse. A bounce would not be; ro_bounced() keeps
	 * the device away from one.
	 */
	if (gop->domid == 0 || gop->domid >= DOMID_FIRST_RESERVED)
		return -EINVAL;
	return 0;
}

/*
 * gnttab_alloc_pages() takes guest-physical room for the mapping from
 * xen_alloc_unpopulated_pages(): where that room lies (below or above
 * 4 GiB) decides whether a 32-bit device can reach the page directly.
 */
static int grant_map(struct grant_ctx *g)
{
	u32 flags = GNTMAP_host_map | (g->ro ? GNTMAP_readonly : 0);
	unsigned int i;
	int ret, res = PVHDMA_RES_OK;

	if (gnttab_alloc_pages(g->n, g->pages))
		return PVHDMA_RES_NO_MEM;
	g->allocated = true;
	for (i = 0; i < g->n; i++)
		gnttab_set_map_op(&g->map[i],
				  (unsigned long)pfn_to_kaddr(page_to_xen_pfn(g->pages[i])),
				  flags, g->segs[i].gref, g->domid);
	ret = gnttab_map_refs(g->map, NULL, g->pages, g->n);
	for (i = 0; i < g->n; i++) {
		g->segs[i].status = g->map[i].status;
		if (g->map[i].status != GNTST_okay)
			res = PVHDMA_RES_GRANT_MAP;
	}
	return ret ? PVHDMA_RES_GRANT_MAP : res;
}

static void grant_unmap(struct grant_ctx *g)
{
	struct gnttab_unmap_grant_ref unmap[PVHDMA_MAX_GRANT_SEGS];
	struct page *pages[PVHDMA_MAX_GRANT_SEGS];
	unsigned int i, n = 0;

	if (!g->allocated)
		return;
	for (i = 0; i < g->n; i++) {
		if (g->map[i].status != GNTST_okay)
			continue;
		/*
		 * The same virtual address as for the map: the helper turns it
		 * into the guest-physical one itself on a translated dom0
		 * (map[i].host_addr already is, and must not be converted again).
		 */
		gnttab_set_unmap_op(&unmap[n],
				    (unsigned long)pfn_to_kaddr(page_to_xen_pfn(g->pages[i])),
				    GNTMAP_host_map, g->map[i].handle);
		pages[n++] = g->pages[i];
	}
	if (n && gnttab_unmap_refs(unmap, NULL, pages, n))
		pr_warn(DRV_NAME ": unmapping %u grants of domain %u failed\n",
			n, g->domid);
	for (i = 0; i < n; i++) {
		/*
		 * A grant left mapped must not go back to the unpopulated pool:
		 * Xen refuses (and kills dom0) when the next map lands on it.
		 */
		if (unmap[i].status != GNTST_okay) {
			pr_err(DRV_NAME ": grant unmap status %d: leaking the pages\n",
			       unmap[i].status);
			return;
		}
	}
	gnttab_free_pages(g->n, g->pages);
}

/* A map that failed still says where the pages were: that is the finding. */
static int copy_grant_pages_out(const struct grant_ctx *g,
				struct pvhdma_op *op)
{
	struct pvhdma_seg __user *out = u64_to_user_ptr(op->segs_ptr);
	unsigned int i;

	op->nsegs = g->allocated ? g->n : 0;
	op->mismatch_offset = ~0ULL;
	for (i = 0; i < op->nsegs && i < op->seg_cap; i++) {
		struct pvhdma_seg s = { .phys = page_to_phys(g->pages[i]) };

		if (copy_to_user(&out[i], &s, sizeof(s)))
			return -EFAULT;
	}
	return 0;
}

/*
 * Take the device's lock for one op, unless remove() has already run: the
 * file can outlive the device, and an op must never touch a gone one.
 */
static int lock_present(struct pvhdma_dev *d)
{
	mutex_lock(&d->lock);
	if (d->gone) {
		mutex_unlock(&d->lock);
		return -ENODEV;
	}
	return 0;
}

static long pvhdma_ioctl_grant(struct pvhdma_dev *d, void __user *uarg)
{
	struct pvhdma_op __user *uop;
	struct pvhdma_grant_seg __user *usegs;
	struct pvhdma_grant_op gop;
	struct pvhdma_op *op;
	struct grant_ctx *g;
	long ret;

	if (!xen_domain())
		return -ENODEV;
	if (copy_from_user(&gop, uarg, sizeof(gop)))
		return -EFAULT;
	uop = u64_to_user_ptr(gop.op_ptr);
	usegs = u64_to_user_ptr(gop.grants_ptr);
	op = kzalloc(sizeof(*op), GFP_KERNEL);
	g = kzalloc(sizeof(*g), GFP_KERNEL);
	if (!op || !g) {
		ret = -ENOMEM;
		goto out;
	}
	if (copy_from_user(op, uop, offsetof(struct pvhdma_op, result))) {
		ret = -EFAULT;
		goto out;
	}
	ret = validate(op) ?: validate_grant(&gop, op);
	if (ret)
		goto out;
	g->domid = gop.domid;
	g->ro = gop.flags & PVHDMA_GRANT_READONLY;
	g->n = op->segments;
	if (copy_from_user(g->segs, usegs, g->n * sizeof(g->segs[0]))) {
		ret = -EFAULT;
		goto out;
	}

	ret = lock_present(d);
	if (ret)
		goto out;
	op->result = grant_map(g);
	if (op->result == PVHDMA_RES_OK)
		ret = run_op(d, op, g);
	else
		ret = copy_grant_pages_out(g, op);
	grant_unmap(g);
	mutex_unlock(&d->lock);

	if (!ret && (copy_to_user(usegs, g->segs, g->n * sizeof(g->segs[0])) ||
		     copy_to_user(uop, op, sizeof(*op))))
		ret = -EFAULT;
out:
	kfree(g);
	kfree(op);
	return ret;
}

/* --- char device --- */

static void pvhdma_free(struct kref *ref)
{
	struct pvhdma_dev *d = container_of(ref, struct pvhdma_dev, ref);

	ida_free(&pvhdma_ida, d->id);
	kfree(d);
}

static int pvhdma_open(struct inode *inode, struct file *f)
{
	struct pvhdma_dev *d = container_of(f->private_data, struct pvhdma_dev, misc);

	kref_get(&d->ref);
	f->private_data = d;
	return 0;
}

static int pvhdma_release(struct inode *inode, struct file *f)
{
	struct pvhdma_dev *d = f->private_data;

	kref_put(&d->ref, pvhdma_free);
	return 0;
}

static long pvhdma_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	struct pvhdma_dev *d = f->private_data;
	void __user *uarg = (void __user *)arg;
	struct pvhdma_op *op;
	long ret;

	if (cmd == PVHDMA_IOC_RUN_GRANT)
		return pvhdma_ioctl_grant(d, uarg);
	if (cmd != PVHDMA_IOC_RUN)
		return -ENOTTY;
	op = kzalloc(sizeof(*op), GFP_KERNEL);
	if (!op)
		return -ENOMEM;
	if (copy_from_user(op, uarg, offsetof(struct pvhdma_op, result))) {
		ret = -EFAULT;
		goto out;
	}
	ret = validate(op);
	if (ret)
		goto out;

	ret = lock_present(d);
	if (ret)
		goto out;
	ret = run_op(d, op, NULL);
	mutex_unlock(&d->lock);

	if (!ret && copy_to_user(uarg, op, sizeof(*op)))
		ret = -EFAULT;
out:
	kfree(op);
	return ret;
}

static const struct file_operations pvhdma_fops = {
	.owner = THIS_MODULE,
	.open = pvhdma_open,
	.release = pvhdma_release,
	.unlocked_ioctl = pvhdma_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

/* --- sysfs: lets the agent report what each instance looked like --- */

static ssize_t addr_bits_show(struct device *dev, struct device_attribute *a,
			      char *buf)
{
	struct pvhdma_dev *d = dev_get_drvdata(dev);

	return sysfs_emit(buf, "%u\n", d->addr_bits);
}
static DEVICE_ATTR_RO(addr_bits);

static ssize_t caps_show(struct device *dev, struct device_attribute *a,
			 char *buf)
{
	struct pvhdma_dev *d = dev_get_drvdata(dev);

	return sysfs_emit(buf, "%#x\n", d->caps);
}
static DEVICE_ATTR_RO(caps);

static ssize_t irq_mode_show(struct device *dev, struct device_attribute *a,
			     char *buf)
{
	struct pvhdma_dev *d = dev_get_drvdata(dev);

	return sysfs_emit(buf, "%s\n", d->msi ? "msi" : "intx");
}
static DEVICE_ATTR_RO(irq_mode);

static ssize_t irq_count_show(struct device *dev, struct device_attribute *a,
			      char *buf)
{
	struct pvhdma_dev *d = dev_get_drvdata(dev);

	return sysfs_emit(buf, "%d\n", atomic_read(&d->irqs));
}
static DEVICE_ATTR_RO(irq_count);

static ssize_t misc_name_show(struct device *dev, struct device_attribute *a,
			      char *buf)
{
	struct pvhdma_dev *d = dev_get_drvdata(dev);

	return sysfs_emit(buf, "%s\n", d->name);
}
static DEVICE_ATTR_RO(misc_name);

static struct attribute *pvhdma_attrs[] = {
	&dev_attr_addr_bits.attr,
	&dev_attr_caps.attr,
	&dev_attr_irq_mode.attr,
	&dev_attr_irq_count.attr,
	&dev_attr_misc_name.attr,
	NULL,
};
ATTRIBUTE_GROUPS(pvhdma);

/* --- PCI --- */

static int pvhdma_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct device *dev = &pdev->dev;
	struct pvhdma_dev *d;
	u32 magic;
	int ret;

	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d)
		return -ENOMEM;
	kref_init(&d->ref);
	mutex_init(&d->lock);
	init_completion(&d->done);
	d->pdev = pdev;
	d->id = ida_alloc_max(&pvhdma_ida, MAX_INSTANCES - 1, GFP_KERNEL);
	if (d->id < 0) {
		ret = d->id;
		kfree(d);
		return ret;
	}

	ret = pci_enable_device(pdev);
	if (ret) {
		dev_err(dev, "cannot enable device: %d\n", ret);
		goto err_free;
	}
	if (!(pci_resource_flags(pdev, 0) & IORESOURCE_MEM))
		dev_warn(dev, "BAR0 is not a memory BAR (contract says it is)\n");
	ret = pci_request_region(pdev, 0, DRV_NAME);
	if (ret) {
		dev_err(dev, "cannot claim BAR0: %d\n", ret);
		goto err_disable;
	}
	d->regs = pci_iomap(pdev, 0, 0);
	if (!d->regs) {
		dev_err(dev, "cannot map BAR0\n");
		ret = -ENOMEM;
		goto err_release;
	}
	magic = rd(d, REG_ID);
	if (magic != ID_MAGIC) {
		dev_err(dev, "bad ID register %#x (want %#x)\n", magic, ID_MAGIC);
		ret = -ENODEV;
		goto err_unmap;
	}
	pci_set_master(pdev);

	d->addr_bits = rd(d, REG_ADDR_BITS);
	d->caps = rd(d, REG_CAPS);
	if (d->addr_bits < 12 || d->addr_bits > 64) {
		dev_err(dev, "ADDR_BITS %u out of range\n", d->addr_bits);
		ret = -EINVAL;
		goto err_unmap;
	}
	ret = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(d->addr_bits));
	if (ret) {
		dev_err(dev, "dma_set_mask_and_coherent(%u bits) failed: %d\n",
			d->addr_bits, ret);
		goto err_unmap;
	}

	ret = pci_alloc_irq_vectors(pdev, 1, 1,
				    (use_msi ? PCI_IRQ_MSI : 0) | PCI_IRQ_INTX);
	if (ret < 0) {
		dev_err(dev, "no interrupt vector: %d\n", ret);
		goto err_unmap;
	}
	d->msi = pdev->msi_enabled;
	d->irq = pci_irq_vector(pdev, 0);
	snprintf(d->name, sizeof(d->name), DRV_NAME "%d", d->id);
	ret = request_irq(d->irq, pvhdma_irq, d->msi ? 0 : IRQF_SHARED, d->name, d);
	if (ret) {
		dev_err(dev, "cannot request irq %d: %d\n", d->irq, ret);
		goto err_vectors;
	}

	d->misc.minor = MISC_DYNAMIC_MINOR;
	d->misc.name = d->name;
	d->misc.fops = &pvhdma_fops;
	d->misc.parent = dev;
	d->misc.mode = 0600;
	pci_set_drvdata(pdev, d);
	ret = misc_register(&d->misc);
	if (ret) {
		dev_err(dev, "cannot register /dev/%s: %d\n", d->name, ret);
		goto err_irq;
	}

	dev_info(dev, "/dev/%s: addr_bits=%u caps=%#x irq=%d (%s) version=%#x\n",
		 d->name, d->addr_bits, d->caps, d->irq, d->msi ? "msi" : "intx",
		 rd(d, REG_VERSION));
	return 0;

err_irq:
	free_irq(d->irq, d);
err_vectors:
	pci_free_irq_vectors(pdev);
err_unmap:
	pci_iounmap(pdev, d->regs);
err_release:
	pci_release_region(pdev, 0);
err_disable:
	pci_disable_device(pdev);
err_free:
	ida_free(&pvhdma_ida, d->id);
	kfree(d);
	return ret;
}

static void pvhdma_remove(struct pci_dev *pdev)
{
	struct pvhdma_dev *d = pci_get_drvdata(pdev);

	misc_deregister(&d->misc);
	/* Open files may outlive the device: they see -ENODEV from now on. */
	mutex_lock(&d->lock);
	d->gone = true;
	mutex_unlock(&d->lock);
	free_irq(d->irq, d);
	pci_free_irq_vectors(pdev);
	pci_clear_master(pdev);
	pci_iounmap(pdev, d->regs);
	pci_release_region(pdev, 0);
	pci_disable_device(pdev);
	kref_put(&d->ref, pvhdma_free);
}

static const struct pci_device_id pvhdma_ids[] = {
	{ PCI_DEVICE(PVHDMA_VENDOR, PVHDMA_DEVICE) },
	{ }
};
MODULE_DEVICE_TABLE(pci, pvhdma_ids);

static struct pci_driver pvhdma_driver = {
	.name = DRV_NAME,
	.id_table = pvhdma_ids,
	.probe = pvhdma_probe,
	.remove = pvhdma_remove,
	.dev_groups = pvhdma_groups,
};
module_pci_driver(pvhdma_driver);

MODULE_DESCRIPTION("pvhdma DMA recorder test driver");
MODULE_LICENSE("GPL");
