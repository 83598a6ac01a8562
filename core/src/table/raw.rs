//! The only `unsafe` code of the engine: epoch-protected pointers.
//!
//! Three structures live here, each small enough to check by eye:
//!
//! * [`EpochCell`]: a value replaced whole (copy-on-write) and read lock-free under a guard.
//! * [`Index`]: one zone's open-addressing hash index of connection pointers. Readers probe it
//!   lock-free under a crossbeam-epoch [`Guard`]; writers hold the zone's lock, proven by the
//!   `&mut IndexWriter` they must pass (it lives inside that lock). A slot holds `0` (empty),
//!   `1` (tombstone) or a connection pointer packed with 16 bits of its hash, so a probe rarely
//!   touches a connection that does not match. Growing or shrinking builds a new slot array,
//!   publishes it with one store and retires the old array through the epoch: readers are never
//!   blocked and never see freed memory.
//! * [`ExpList`]: one of the expiration lists, an intrusive doubly linked list in the style of
//!   OVS's rculist. Insertion (at the front) and unlinking take the list's lock; walking takes
//!   none.
//!
//! # Why walking a list without its lock is safe
//! Unlinking a connection rewires its neighbours but leaves the connection's own `next`
//! pointer as it was, and the connection is freed only after an epoch grace period. By
//! induction, every connection a walker pinned at time `T` reaches was in the list at some
//! moment after `T`: the head it loads was; and if `X` was in the list after `T`, the `next`
//! it reads from `X` is either `X`'s successor now (in the list now) or its successor at the
//! moment `X` was unlinked (in the list then, which is after `T`). A connection is retired only
//! after being unlinked, so everything the walker can reach was retired, if at all, after it
//! pinned, and its memory stays valid until the walker unpins. The walker may visit a
//! connection that was just unlinked; removal is idempotent (the `reclaimed` flag), so that is
//! harmless.
//!
//! # Lifetime of a connection
//! A connection is allocated once, published in its zone's index and pushed on one
//! expiration list while the zone lock is held, and never moves afterwards. It is freed by
//! [`retire`] only: the caller that wins the `reclaimed` test-and-set removes it from the index
//! and the list, under their locks, and hands it to the epoch collector. [`Index::free_all`]
//! frees what is still linked when the tracker itself is dropped (exclusive access).

use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use crossbeam_epoch::{Atomic, Guard, Owned, Shared};
use parking_lot::Mutex;

use crate::conn::Conn;

const EMPTY: u64 = 0;
const TOMBSTONE: u64 = 1;
const PTR_BITS: u32 = 48;
const PTR_MASK: u64 = (1 << PTR_BITS) - 1;
const MIN_SLOTS: usize = 16;

// === EpochCell ===

/// A value read lock-free and replaced whole by writers (who serialise among themselves).
pub(crate) struct EpochCell<T: Send + Sync + 'static> {
    ptr: Atomic<T>,
}

impl<T: Send + Sync + 'static> EpochCell<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            ptr: Atomic::new(value),
        }
    }

    /// The current value; valid while `guard` is pinned.
    pub(crate) fn load<'g>(&self, guard: &'g Guard) -> &'g T {
        let shared = self.ptr.load(Ordering::Acquire, guard);
        // SAFETY: the pointer is never null (set by `new` and `replace`), and a replaced value
        // is destroyed only after every guard pinned before the replacement is dropped, so it
        // outlives `guard`.
        unsafe { shared.deref() }
    }

    /// Publishes `value`; the old one is destroyed after a grace period.
    pub(crate) fn replace(&self, value: T, guard: &Guard) {
        let old = self.ptr.swap(Owned::new(value), Ordering::AcqRel, guard);
        // SAFETY: `old` was just unlinked by the swap, so no new reader can reach it; readers
        // that loaded it before hold guards that delay the destruction.
        unsafe { guard.defer_destroy(old) };
    }
}

impl<T: Send + Sync + 'static> Drop for EpochCell<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` means no other thread can access the cell; values replaced
        // earlier were handed to the collector already, this one is still owned here.
        unsafe {
            let guard = crossbeam_epoch::unprotected();
            drop(self.ptr.load(Ordering::Relaxed, guard).into_owned());
        }
    }
}

impl<T: Send + Sync + std::fmt::Debug + 'static> std::fmt::Debug for EpochCell<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let guard = crossbeam_epoch::pin();
        self.load(&guard).fmt(f)
    }
}

// === Index ===

struct SlotArray {
    slots: Box<[AtomicU64]>,
}

impl SlotArray {
    fn with_capacity(n: usize) -> Self {
        Self {
            slots: (0..n).map(|_| AtomicU64::new(EMPTY)).collect(),
        }
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }
}

/// Bookkeeping of an [`Index`] that only the holder of the zone lock may touch.
#[derive(Debug, Default)]
pub(crate) struct IndexWriter {
    live: usize,
    /// Live entries plus tombstones.
    used: usize,
}

impl IndexWriter {
    pub(crate) fn live(&self) -> usize {
        self.live
    }
}

/// A zone's hash index of connections.
pub(crate) struct Index {
    array: Atomic<SlotArray>,
}

/// Why a connection could not be indexed.
#[derive(Debug)]
pub(crate) struct AddressTooWide;

impl Index {
    pub(crate) fn new() -> Self {
        Self {
            array: Atomic::new(SlotArray::with_capacity(MIN_SLOTS)),
        }
    }

    fn array<'g>(&self, guard: &'g Guard) -> &'g SlotArray {
        // SAFETY: never null; old arrays are retired through the epoch after being replaced.
        unsafe { self.array.load(Ordering::Acquire, guard).deref() }
    }

    /// The first connection with this `hash` accepted by `pred`.
    pub(crate) fn find<'g>(
        &self,
        hash: u64,
        guard: &'g Guard,
        mut pred: impl FnMut(&'g Conn) -> bool,
    ) -> Option<&'g Conn> {
        let array = self.array(guard);
        let mask = array.mask();
        let tag = hash >> PTR_BITS;
        let mut i = hash as usize & mask;
        for _ in 0..=mask {
            let v = array.slots[i].load(Ordering::Acquire);
            if v == EMPTY {
                return None;
            }
            if v != TOMBSTONE && v >> PTR_BITS == tag {
                let conn = deref_slot(v, guard);
                if pred(conn) {
                    return Some(conn);
                }
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Calls `f` for each connection in slots `from..`, stopping when `f` returns false.
    /// Returns the slot to resume from, or `None` when the end was reached.
    pub(crate) fn scan<'g>(
        &self,
        from: usize,
        guard: &'g Guard,
        mut f: impl FnMut(&'g Conn) -> bool,
    ) -> Option<usize> {
        let array = self.array(guard);
        for i in from..array.slots.len() {
            let v = array.slots[i].load(Ordering::Acquire);
            if v != EMPTY && v != TOMBSTONE && !f(deref_slot(v, guard)) {
                return Some(i + 1);
            }
        }
        None
    }

    /// Adds a freshly allocated connection. The caller holds the zone lock (`writer`).
    pub(crate) fn insert<'g>(
        &self,
        writer: &mut IndexWriter,
        conn: Box<Conn>,
        hash: u64,
        seed: u64,
        guard: &'g Guard,
    ) -> Result<&'g Conn, (Box<Conn>, AddressTooWide)> {
        let ptr = Box::into_raw(conn);
        let addr = ptr.expose_provenance() as u64;
        if addr & !PTR_MASK != 0 || addr <= TOMBSTONE {
            // SAFETY: `ptr` came from `Box::into_raw` just above and was never shared.
            return Err((unsafe { Box::from_raw(ptr) }, AddressTooWide));
        }
        let mut array = self.array(guard);
        if (writer.used + 1) * 4 > array.slots.len() * 3 {
            self.rebuild(writer, writer.live + 1, seed, guard);
            array = self.array(guard);
        }
        let mask = array.mask();
        let mut i = hash as usize & mask;
        loop {
            let v = array.slots[i].load(Ordering::Relaxed);
            if v == EMPTY || v == TOMBSTONE {
                if v == EMPTY {
                    writer.used += 1;
                }
                writer.live += 1;
                let v = ((hash >> PTR_BITS) << PTR_BITS) | addr;
                array.slots[i].store(v, Ordering::Release);
                return Ok(deref_slot(v, guard));
            }
            i = (i + 1) & mask;
        }
    }

    /// Removes `conn` (found through `hash`); false if it is not indexed here.
    fn remove(
        &self,
        writer: &mut IndexWriter,
        conn: &Conn,
        hash: u64,
        seed: u64,
        guard: &Guard,
    ) -> bool {
        let array = self.array(guard);
        let mask = array.mask();
        let target = std::ptr::from_ref(conn).expose_provenance() as u64;
        let mut i = hash as usize & mask;
        for _ in 0..=mask {
            let v = array.slots[i].load(Ordering::Relaxed);
            if v == EMPTY {
                return false;
            }
            if v != TOMBSTONE && v & PTR_MASK == target {
                array.slots[i].store(TOMBSTONE, Ordering::Release);
                writer.live -= 1;
                if array.slots.len() > MIN_SLOTS && writer.live * 8 < array.slots.len() {
                    self.rebuild(writer, writer.live, seed, guard);
                }
                return true;
            }
            i = (i + 1) & mask;
        }
        false
    }

    /// Replaces the slot array by one sized for `live` entries, without tombstones.
    fn rebuild(&self, writer: &mut IndexWriter, live: usize, seed: u64, guard: &Guard) {
        let capacity = (live * 2).next_power_of_two().max(MIN_SLOTS);
        let fresh = SlotArray::with_capacity(capacity);
        let mask = fresh.mask();
        let old = self.array(guard);
        let mut moved = 0;
        for slot in old.slots.iter() {
            let v = slot.load(Ordering::Relaxed);
            if v == EMPTY || v == TOMBSTONE {
                continue;
            }
            let hash = deref_slot(v, guard).key.hash(seed);
            let mut i = hash as usize & mask;
            while fresh.slots[i].load(Ordering::Relaxed) != EMPTY {
                i = (i + 1) & mask;
            }
            fresh.slots[i].store(v, Ordering::Relaxed);
            moved += 1;
        }
        writer.live = moved;
        writer.used = moved;
        let old = self.array.swap(Owned::new(fresh), Ordering::AcqRel, guard);
        // SAFETY: the old array is unreachable for new readers after the swap; readers that
        // loaded it hold guards, which delay its destruction. Dropping a `SlotArray` frees only
        // the slots, never the connections they point to.
        unsafe { guard.defer_destroy(old) };
    }

    /// Frees every connection still indexed. Requires exclusive access (tracker drop).
    pub(crate) fn free_all(&mut self, freed: &AtomicU64) {
        // SAFETY: `&mut self` (the tracker is being dropped) means no reader or writer is left.
        let guard = unsafe { crossbeam_epoch::unprotected() };
        let array = self.array(guard);
        for slot in array.slots.iter() {
            let v = slot.swap(EMPTY, Ordering::Relaxed);
            if v != EMPTY && v != TOMBSTONE {
                let ptr = std::ptr::with_exposed_provenance_mut::<Conn>((v & PTR_MASK) as usize);
                // SAFETY: each live slot owns a connection allocated with `Box` by `insert`,
                // not yet retired (retiring removes it from the index first), and indexed in
                // exactly one slot of one zone, so it is freed exactly once.
                drop(unsafe { Box::from_raw(ptr) });
                freed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        // SAFETY: exclusive access; the current array is owned by the index (replaced ones
        // were retired through the collector).
        unsafe {
            let guard = crossbeam_epoch::unprotected();
            drop(self.array.load(Ordering::Relaxed, guard).into_owned());
        }
    }
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let guard = crossbeam_epoch::pin();
        f.debug_struct("Index")
            .field("slots", &self.array(&guard).slots.len())
            .finish()
    }
}

fn deref_slot(v: u64, _guard: &Guard) -> &Conn {
    let ptr = std::ptr::with_exposed_provenance::<Conn>((v & PTR_MASK) as usize);
    // SAFETY: `v` was read from a slot while `_guard` is pinned. Connections are retired only
    // after their slot was cleared, so one still readable from a slot (of the current array or
    // of an array retired after we pinned) is freed no earlier than the guard's release.
    unsafe { &*ptr }
}

// === Expiration lists ===

/// The links of a connection in its expiration list.
#[derive(Debug, Default)]
pub(crate) struct ExpLinks {
    /// Next connection; read lock-free by the sweeper, written under the list lock.
    next: Atomic<Conn>,
    /// Previous connection (null at the head); only touched under the list lock.
    prev: AtomicPtr<Conn>,
}

/// One expiration list.
#[derive(Debug, Default)]
pub(crate) struct ExpList {
    lock: Mutex<()>,
    head: Atomic<Conn>,
}

impl ExpList {
    /// Pushes a connection that was just indexed (the zone lock is held by the caller).
    pub(crate) fn push_front(&self, conn: &Conn, guard: &Guard) {
        let _locked = self.lock.lock();
        let head = self.head.load(Ordering::Relaxed, guard);
        conn.links.next.store(head, Ordering::Relaxed);
        conn.links
            .prev
            .store(std::ptr::null_mut(), Ordering::Relaxed);
        // SAFETY: a connection in the list cannot be retired while we hold the list lock
        // (retiring unlinks under this lock first), so `head` is valid if not null.
        if let Some(h) = unsafe { head.as_ref() } {
            h.links
                .prev
                .store(std::ptr::from_ref(conn).cast_mut(), Ordering::Relaxed);
        }
        self.head
            .store(Shared::from(std::ptr::from_ref(conn)), Ordering::Release);
    }

    fn unlink(&self, conn: &Conn, guard: &Guard) {
        let _locked = self.lock.lock();
        let next = conn.links.next.load(Ordering::Relaxed, guard);
        let prev = conn.links.prev.load(Ordering::Relaxed);
        // SAFETY: `prev` and `next` are neighbours in the list and, as above, cannot be retired
        // while the lock is held.
        match unsafe { prev.as_ref() } {
            None => self.head.store(next, Ordering::Release),
            Some(p) => p.links.next.store(next, Ordering::Release),
        }
        // SAFETY: as above.
        if let Some(n) = unsafe { next.as_ref() } {
            n.links.prev.store(prev, Ordering::Relaxed);
        }
        // `conn.links.next` is left as it is for walkers standing on `conn` (see module doc).
    }

    /// Visits the list without locking, until `f` returns false.
    pub(crate) fn walk<'g>(&self, guard: &'g Guard, mut f: impl FnMut(&'g Conn) -> bool) {
        let mut cur = self.head.load(Ordering::Acquire, guard);
        // SAFETY: see "Why walking a list without its lock is safe" in the module doc.
        while let Some(conn) = unsafe { cur.as_ref() } {
            if !f(conn) {
                return;
            }
            cur = conn.links.next.load(Ordering::Acquire, guard);
        }
    }
}

// === Retiring ===

/// Removes `conn` from its zone index and its expiration list and frees it after a grace
/// period. Idempotent: only the first caller (the winner of the `reclaimed` test-and-set)
/// does anything; it returns whether this call did. `writer` proves the zone lock is held.
pub(crate) fn retire(
    conn: &Conn,
    index: &Index,
    writer: &mut IndexWriter,
    list: &ExpList,
    seed: u64,
    freed: &Arc<AtomicU64>,
    guard: &Guard,
) -> bool {
    if conn.reclaimed.swap(true, Ordering::AcqRel) {
        return false;
    }
    if !index.remove(writer, conn, conn.key.hash(seed), seed, guard) {
        // Not indexed here: a logic error elsewhere. Leaking is safe; freeing would not be.
        debug_assert!(false, "retiring a connection that is not indexed");
        return false;
    }
    list.unlink(conn, guard);
    let ptr = std::ptr::from_ref(conn).cast_mut();
    let freed = Arc::clone(freed);
    // SAFETY: the connection is now unreachable from the index and from its list (both
    // unlinked under their locks above), it was allocated by `Box` in `Index::insert`, and the
    // `reclaimed` flag guarantees this runs once. Readers that still hold a reference pinned
    // before this call, which delays the closure until they unpin.
    unsafe {
        guard.defer_unchecked(move || {
            drop(Box::from_raw(ptr));
            freed.fetch_add(1, Ordering::Relaxed);
        });
    }
    true
}
