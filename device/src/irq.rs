//! Interrupt delivery through the eventfds QEMU hands over with SET_IRQS.
//!
//! INTx is level-triggered and automasked: QEMU asserts the line when we
//! signal, deasserts it on the guest's EOI and then sends UNMASK; a still
//! pending interrupt is signalled again at that point.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;

pub const INTX: u32 = 0;
pub const MSI: u32 = 1;
/// vfio's PCI IRQ indexes: INTx, MSI, MSI-X, ERR, REQ.
pub const NUM_IRQS: u32 = 5;

pub const SET_DATA_NONE: u32 = 1 << 0;
pub const SET_DATA_BOOL: u32 = 1 << 1;
pub const SET_DATA_EVENTFD: u32 = 1 << 2;
pub const SET_ACTION_MASK: u32 = 1 << 3;
pub const SET_ACTION_UNMASK: u32 = 1 << 4;
pub const SET_ACTION_TRIGGER: u32 = 1 << 5;

pub const INFO_EVENTFD: u32 = 1 << 0;
pub const INFO_MASKABLE: u32 = 1 << 1;
pub const INFO_AUTOMASKED: u32 = 1 << 2;
pub const INFO_NORESIZE: u32 = 1 << 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    Msi,
    Intx,
    /// Masked or no eventfd yet; remembered as pending.
    None,
}

#[derive(Debug, Default)]
pub struct Irqs {
    intx: Option<File>,
    msi: Option<File>,
    intx_masked: bool,
}

/// (flags, count) for GET_IRQ_INFO.
pub fn info(index: u32) -> Option<(u32, u32)> {
    match index {
        INTX => Some((INFO_EVENTFD | INFO_MASKABLE | INFO_AUTOMASKED, 1)),
        MSI => Some((INFO_EVENTFD | INFO_NORESIZE, 1)),
        // MSI-X: none. ERR and REQ: one each, so QEMU can attach its
        // notifiers (we never signal them).
        2 => Some((INFO_EVENTFD, 0)),
        3 | 4 => Some((INFO_EVENTFD, 1)),
        _ => None,
    }
}

impl Irqs {
    /// Applies one SET_IRQS; `Err` carries a short reason for the log.
    /// Returns whether the caller should re-signal a pending interrupt.
    pub fn set(
        &mut self,
        index: u32,
        flags: u32,
        start: u32,
        count: u32,
        mut fds: Vec<OwnedFd>,
    ) -> Result<bool, &'static str> {
        match index {
            INTX | MSI => {}
            3 | 4 if count <= 1 => return Ok(false),
            _ if count == 0 => return Ok(false),
            _ => return Err("irq index has no vectors"),
        }
        if start != 0 || count > 1 {
            return Err("vector out of range");
        }
        let action = flags & (SET_ACTION_MASK | SET_ACTION_UNMASK | SET_ACTION_TRIGGER);
        match action {
            SET_ACTION_TRIGGER if flags & SET_DATA_EVENTFD != 0 => {
                let fd = if count == 0 { None } else { fds.pop().map(File::from) };
                if index == INTX {
                    self.intx = fd;
                    self.intx_masked = false;
                } else {
                    self.msi = fd;
                }
                Ok(false)
            }
            SET_ACTION_TRIGGER if count == 0 => {
                if index == INTX {
                    self.intx = None;
                } else {
                    self.msi = None;
                }
                Ok(false)
            }
            SET_ACTION_TRIGGER => Ok(true),
            SET_ACTION_MASK if index == INTX => {
                self.intx_masked = true;
                Ok(false)
            }
            SET_ACTION_UNMASK if index == INTX => {
                self.intx_masked = false;
                Ok(true)
            }
            // Mask/unmask eventfds (notify-on-mask) and MSI masking: not offered.
            _ => Err("unsupported irq action"),
        }
    }

    /// Signals the completion interrupt: MSI when QEMU gave us its eventfd
    /// (it does so only once the guest enabled MSI), INTx otherwise.
    pub fn raise(&mut self) -> std::io::Result<Delivered> {
        if let Some(f) = self.msi.as_mut() {
            f.write_all(&1u64.to_ne_bytes())?;
            return Ok(Delivered::Msi);
        }
        if let (Some(f), false) = (self.intx.as_mut(), self.intx_masked) {
            f.write_all(&1u64.to_ne_bytes())?;
            self.intx_masked = true;
            return Ok(Delivered::Intx);
        }
        Ok(Delivered::None)
    }

    pub fn clear_all(&mut self) {
        *self = Irqs::default();
    }
}
