//! A meter's data port at character level: what a serial port or a pty carries.
//!
//! The software meter implements [`CharPeer`]; the pty server of `rig sim --link` feeds it the
//! characters it reads (stamped per the serial-only contract of NOTES §3: a character is seen at
//! the end of its stop bit) and writes the characters it schedules at the end of their stop bits,
//! so a reader applying the same contract recovers the meter's exact timing. Pure trait; no I/O.

use crate::time::Timestamp;

/// A character scheduled for transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledChar {
    /// The byte as it goes on the wire (soft 7E1: parity in bit 7).
    pub byte: u8,
    /// When its start bit begins.
    pub start: Timestamp,
    /// When its stop bit ends.
    pub end: Timestamp,
}

/// The meter side of a character link.
pub trait CharPeer {
    /// Line rate in baud.
    fn baud(&self) -> u32;
    /// A character arrived from the rig; its stop bit ended at `end`.
    fn receive(&mut self, byte: u8, end: Timestamp);
    /// Advances the meter to `now` (integrates energy, runs timers).
    fn advance(&mut self, now: Timestamp);
    /// Characters the meter has scheduled whose start bit begins at or before `until`, in order;
    /// they are removed from the schedule.
    fn take_transmit(&mut self, until: Timestamp) -> Vec<ScheduledChar>;
    /// When the next scheduled character starts, if any.
    fn next_transmit(&self) -> Option<Timestamp>;
}
