//! The supervisor's table of children: specs in start order, with lookups by id and by actor.
//!
//! ractor keeps a supervisor's children in a hash map with no order, but rest_for_one and
//! ordered shutdown need the start order. Order is a `BTreeMap` keyed by a sequence number,
//! so inserting and deleting stay O(log n) with thousands of dynamic children.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use ractor::{ActorCell, ActorId};

use crate::breaker::Breaker;
use crate::introspect::Status;
use crate::spec::{ChildId, ChildSpec};

/// One child as the supervisor sees it.
pub(crate) struct Child {
    pub spec: ChildSpec,
    pub path: String,
    seq: u64,
    /// The running incarnation, if any.
    pub cell: Option<ActorCell>,
    pub status: Status,
    /// Restarts since the spec was added.
    pub restarts: u32,
    /// Restarts since the child was last stable; drives the backoff.
    pub consecutive: u32,
    pub started_at: Instant,
    /// Bumped on every change of incarnation, so timers scheduled for an older one are ignored.
    pub generation: u64,
    pub breaker: Option<Breaker>,
}

#[derive(Default)]
pub(crate) struct Children {
    order: BTreeMap<u64, ChildId>,
    /// Boxed: a `Child` is hundreds of bytes, and growing a map of them inline would copy
    /// them all while the supervisor is blocked (tens of ms at 10k children).
    by_id: HashMap<ChildId, Box<Child>>,
    by_actor: HashMap<ActorId, ChildId>,
    next_seq: u64,
}

impl Children {
    /// Adds a spec at the end of the start order; false if the id is taken.
    pub fn insert(&mut self, spec: ChildSpec, path: String) -> bool {
        if self.by_id.contains_key(&spec.id) {
            return false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, spec.id.clone());
        let breaker = spec.breaker.map(Breaker::new);
        self.by_id.insert(
            spec.id.clone(),
            Box::new(Child {
                spec,
                path,
                seq,
                cell: None,
                status: Status::Stopped,
                restarts: 0,
                consecutive: 0,
                started_at: Instant::now(),
                generation: 0,
                breaker,
            }),
        );
        true
    }

    pub fn get(&self, id: &str) -> Option<&Child> {
        self.by_id.get(id).map(|c| &**c)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Child> {
        self.by_id.get_mut(id).map(|c| &mut **c)
    }

    /// Deletes the spec; the caller has already stopped the child.
    pub fn remove(&mut self, id: &str) -> Option<Box<Child>> {
        let child = self.by_id.remove(id)?;
        self.order.remove(&child.seq);
        if let Some(cell) = &child.cell {
            self.by_actor.remove(&cell.get_id());
        }
        Some(child)
    }

    /// Records the running incarnation of `id`.
    pub fn attach(&mut self, id: &str, cell: ActorCell) {
        if let Some(child) = self.by_id.get_mut(id) {
            self.by_actor.insert(cell.get_id(), id.to_owned());
            child.cell = Some(cell);
            child.status = Status::Running;
            child.started_at = Instant::now();
            child.generation += 1;
        }
    }

    /// Forgets the running incarnation of `id` (it exited, or is about to be stopped), so
    /// that its exit event, when it arrives, is not mistaken for a failure.
    pub fn detach(&mut self, id: &str) -> Option<ActorCell> {
        let child = self.by_id.get_mut(id)?;
        child.generation += 1;
        let cell = child.cell.take()?;
        self.by_actor.remove(&cell.get_id());
        Some(cell)
    }

    /// Which child an exit event is about; `None` for incarnations we no longer track.
    pub fn owner_of(&self, actor: ActorId) -> Option<ChildId> {
        self.by_actor.get(&actor).cloned()
    }

    /// All ids, in start order.
    pub fn ids(&self) -> Vec<ChildId> {
        self.order.values().cloned().collect()
    }

    /// `id` and every child started after it, in start order.
    pub fn ids_from(&self, id: &str) -> Vec<ChildId> {
        match self.by_id.get(id) {
            Some(child) => self
                .order
                .range(child.seq..)
                .map(|(_, v)| v.clone())
                .collect(),
            None => Vec::new(),
        }
    }

    /// Sorts `ids` into start order.
    pub fn in_start_order(&self, ids: &mut [ChildId]) {
        ids.sort_by_key(|id| self.by_id.get(id).map_or(u64::MAX, |c| c.seq));
    }

    pub fn iter(&self) -> impl Iterator<Item = &Child> {
        self.order
            .values()
            .filter_map(|id| self.by_id.get(id).map(|c| &**c))
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }
}
