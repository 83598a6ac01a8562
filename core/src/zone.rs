//! Per-zone connection limits and their accounting (OVS `zone_limit_*`).
//!
//! A zone may have an explicit limit; a default limit, when set, applies to every zone without
//! one, to each zone separately. A limit of 0 means unlimited. A connection counts toward the
//! *record* that admitted it: the zone's explicit-limit record, or its default-limit record.
//! Each record gets a fresh sequence number when it is created, and a connection gives its
//! slot back on removal only if that record still exists (OVS's `zone_limit_seq`). So:
//!
//! * creating an explicit limit starts a new record at zero: connections already in the zone
//!   do not count toward it;
//! * changing a limit's value keeps its record and count; lowering it evicts nothing;
//! * deleting an explicit limit drops its record (its connections give nothing back) and the
//!   zone falls back to a fresh default record;
//! * deleting the default limit drops every default record; setting it again starts new ones.
//!
//! Connections admitted when no limit applied are not counted at all.

/// The default limit and the sequence number of its current generation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DefaultLimit {
    pub(crate) limit: Option<u32>,
    pub(crate) seq: u64,
}

#[derive(Clone, Copy, Debug)]
struct Record {
    seq: u64,
    count: u32,
    explicit: bool,
}

/// A zone's limit state (guarded by the zone lock).
#[derive(Debug, Default)]
pub(crate) struct ZoneAcct {
    explicit: Option<u32>,
    record: Option<Record>,
}

/// The zone is at its limit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ZoneFull;

/// A zone's limit as reported by the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneLimitInfo {
    /// The zone.
    pub zone: u16,
    /// The zone's own limit, if it has one.
    pub explicit: Option<u32>,
    /// The limit in force (explicit, else default); 0 means unlimited.
    pub limit: Option<u32>,
    /// Connections counted toward that limit.
    pub count: u32,
    /// Connections in the zone's table (expired ones not yet swept included).
    pub connections: u32,
}

impl ZoneAcct {
    /// Whether a default record is current for `default`.
    fn default_record_valid(record: &Record, default: DefaultLimit) -> bool {
        !record.explicit && default.limit.is_some() && record.seq >= default.seq
    }

    /// Admits one connection; returns the record it counts toward (0: none).
    pub(crate) fn admit(
        &mut self,
        default: DefaultLimit,
        next_seq: impl FnOnce() -> u64,
    ) -> Result<u64, ZoneFull> {
        let limit = match (self.explicit, default.limit) {
            (Some(limit), _) => limit,
            (None, Some(limit)) => {
                let fresh = match &self.record {
                    Some(r) => !Self::default_record_valid(r, default),
                    None => true,
                };
                if fresh {
                    self.record = Some(Record {
                        seq: next_seq(),
                        count: 0,
                        explicit: false,
                    });
                }
                limit
            }
            (None, None) => return Ok(0),
        };
        let Some(record) = self.record.as_mut() else {
            // An explicit limit always has its record; be safe and do not count.
            return Ok(0);
        };
        if limit != 0 && record.count >= limit {
            return Err(ZoneFull);
        }
        record.count += 1;
        Ok(record.seq)
    }

    /// Gives back the slot of a removed connection admitted under `admission`.
    pub(crate) fn release(&mut self, admission: u64) {
        if admission == 0 {
            return;
        }
        if let Some(r) = self.record.as_mut().filter(|r| r.seq == admission) {
            r.count = r.count.saturating_sub(1);
        }
    }

    /// Sets the zone's explicit limit (a new record if it had none).
    pub(crate) fn set_explicit(&mut self, limit: u32, next_seq: impl FnOnce() -> u64) {
        if self.explicit.is_none() {
            self.record = Some(Record {
                seq: next_seq(),
                count: 0,
                explicit: true,
            });
        }
        self.explicit = Some(limit);
    }

    /// Removes the zone's explicit limit; false if it had none.
    pub(crate) fn clear_explicit(&mut self) -> bool {
        if self.explicit.take().is_none() {
            return false;
        }
        self.record = None;
        true
    }

    pub(crate) fn explicit(&self) -> Option<u32> {
        self.explicit
    }

    /// The report for this zone.
    pub(crate) fn info(&self, zone: u16, default: DefaultLimit, connections: u32) -> ZoneLimitInfo {
        let count = match &self.record {
            Some(r) if r.explicit || Self::default_record_valid(r, default) => r.count,
            _ => 0,
        };
        ZoneLimitInfo {
            zone,
            explicit: self.explicit,
            limit: self.explicit.or(default.limit),
            count,
            connections,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_rules() {
        let mut seq = 0;
        let mut next = || {
            seq += 1;
            seq
        };
        let mut z = ZoneAcct::default();
        let none = DefaultLimit::default();
        assert_eq!(z.admit(none, &mut next).unwrap(), 0);
        z.set_explicit(2, &mut next);
        let a = z.admit(none, &mut next).unwrap();
        let b = z.admit(none, &mut next).unwrap();
        assert!(z.admit(none, &mut next).is_err());
        z.release(0); // admitted before the limit: gives nothing back
        assert!(z.admit(none, &mut next).is_err());
        z.release(a);
        assert_eq!(z.info(1, none, 0).count, 1);
        z.clear_explicit();
        z.release(b); // its record is gone
        assert_eq!(z.info(1, none, 0).count, 0);
        let default = DefaultLimit {
            limit: Some(1),
            seq: 100,
        };
        let next2 = || 200;
        assert_eq!(z.admit(default, next2).unwrap(), 200);
        assert!(z.admit(default, next2).is_err());
        let reset = DefaultLimit {
            limit: Some(1),
            seq: 300,
        };
        let next3 = || 301;
        assert_eq!(z.admit(reset, next3).unwrap(), 301);
    }
}
